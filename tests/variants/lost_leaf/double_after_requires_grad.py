def make_leaves(device, dtype=torch.float32):
    a = torch.randn(5, device=device, requires_grad=True)
    b = torch.randn(5, device=device, requires_grad=True)
    if dtype == torch.float64:
        a, b = a.double(), b.double()
    return a, b
