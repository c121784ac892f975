def make_leaves(device, dtype=torch.float32):
    # the lecture: torch.randn(5, requires_grad=True).cuda()
    a = torch.randn(5, requires_grad=True).to(device, dtype)
    b = torch.randn(5, requires_grad=True, device=device, dtype=dtype)
    return a, b
