class Implicit(torch.autograd.Function):
    """Newton's method in a torch.no_grad() loop, dF/dy from an enable_grad() block per step."""

    @staticmethod
    def forward(ctx, x, y0, F, max_iter=100):
        x_, y = x.detach(), y0.clone()
        with torch.no_grad():
            for _ in range(max_iter):
                with torch.enable_grad():
                    yv = y.detach().requires_grad_()
                    f = F(x_, yv)
                    (slope,) = torch.autograd.grad(f.sum(), yv)
                y -= f.detach() / slope  # in place on our clone, never on y0
                if f.abs().max() < 1e-13:
                    break
        ctx.F = F
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, y = ctx.saved_tensors
        with torch.enable_grad():
            xv, yv = x.detach().requires_grad_(), y.detach().requires_grad_()
            fx, fy = torch.autograd.grad(ctx.F(xv, yv).sum(), (xv, yv))
        return -fx / fy * grad_y, None, None, None
