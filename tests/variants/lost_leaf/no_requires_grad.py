def make_leaves(device, dtype=torch.float32):
    return torch.randn(5, device=device, dtype=dtype), torch.randn(5, device=device, dtype=dtype)
