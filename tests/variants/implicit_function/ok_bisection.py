import torch.func


class Implicit(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y0, F, max_iter=100):
        x_, y0_ = x.detach(), y0.detach()
        width = torch.full_like(y0_, 0.1)
        for _ in range(50):  # widen [y0 - width, y0 + width] until F changes sign
            lo, hi = y0_ - width, y0_ + width
            if bool((F(x_, lo) * F(x_, hi) <= 0).all()):
                break
            width = 2 * width
        f_lo = F(x_, lo)
        for _ in range(max(max_iter, 60)):
            mid = (lo + hi) / 2
            f_mid = F(x_, mid)
            left = f_lo * f_mid <= 0  # the sign change is in [lo, mid]
            hi = torch.where(left, mid, hi)
            lo = torch.where(left, lo, mid)
            f_lo = torch.where(left, f_lo, f_mid)
        y = (lo + hi) / 2
        ctx.F = F
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, y = ctx.saved_tensors
        F = lambda a, b: ctx.F(a, b).sum()
        dfdx = torch.func.grad(F, argnums=0)(x.detach(), y.detach())
        dfdy = torch.func.grad(F, argnums=1)(x.detach(), y.detach())
        return -dfdx / dfdy * grad_y, None, None, None
