def make_leaves(device, dtype=torch.float32):
    return (torch.ones(5, device=device, dtype=dtype, requires_grad=True),
            torch.ones(5, device=device, dtype=dtype, requires_grad=True))
