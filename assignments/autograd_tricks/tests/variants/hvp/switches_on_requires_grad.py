def hvp(f, x, v):
    x.requires_grad_()  # the caller's x, not a copy
    (g,) = torch.autograd.grad(f(x), x, create_graph=True)
    (hv,) = torch.autograd.grad(g @ v, x)
    return hv
