def hvp(f, x, v):
    x = x.detach().requires_grad_()
    (g,) = torch.autograd.grad(f(x), x)  # no create_graph: g has no graph to differentiate again
    (hv,) = torch.autograd.grad(g @ v, x)
    return hv
