def make_leaves(device, dtype=torch.float32):
    return (torch.randn(5, dtype=dtype, requires_grad=True), torch.randn(5, dtype=dtype, requires_grad=True))
