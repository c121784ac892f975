def hvp(f, x, v):
    x = x.detach().requires_grad_()
    (g,) = torch.autograd.grad(f(x), x, create_graph=True)
    # H is symmetric, so H v = sum_i v_i H[i]: right, but one backward pass per entry of g
    return sum(v[i] * torch.autograd.grad(g[i], x, retain_graph=True)[0] for i in range(x.shape[0]))
