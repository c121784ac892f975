class Implicit(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y0, F, max_iter=100):
        y = y0.clone()
        while True:
            with torch.enable_grad():
                yv = y.detach().requires_grad_()
                f = F(x.detach(), yv)
                (dfdy,) = torch.autograd.grad(f.sum(), yv)
            if bool((f == 0).all()):
                break
            y = (y - f / dfdy).detach() + 1e-3 * torch.rand_like(y)
        ctx.F = F
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, y = ctx.saved_tensors
        with torch.enable_grad():
            xv, yv = x.detach().requires_grad_(), y.detach().requires_grad_()
            dfdx, dfdy = torch.autograd.grad(ctx.F(xv, yv).sum(), [xv, yv])
        return -grad_y * dfdx / dfdy, None, None, None
