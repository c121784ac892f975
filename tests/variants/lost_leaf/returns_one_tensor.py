def make_leaves(device, dtype=torch.float32):
    return torch.randn(2, 5, device=device, dtype=dtype, requires_grad=True)
