def make_leaves(device, dtype=torch.float32):
    # the lecture's repaired version: move first, then ask for gradients
    a = torch.randn(5).to(device=device, dtype=dtype).requires_grad_()
    b = torch.randn(5).to(device=device, dtype=dtype).requires_grad_()
    return a, b
