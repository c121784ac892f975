def make_leaves(device, dtype=torch.float32):
    def leaf():
        return torch.empty(5, device=device, dtype=dtype).normal_().requires_grad_(True)
    return leaf(), leaf()
