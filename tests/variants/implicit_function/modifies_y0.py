class Implicit(torch.autograd.Function):  # derive autograd.Function
    @staticmethod
    def forward(ctx, x, y0, F, max_iter=100):  # Context ctx as special first parameter to static method forward
        with torch.enable_grad():
            y = y0.detach().requires_grad_()
            xv = x.detach()
            opt = torch.optim.LBFGS([y], max_iter=max_iter)  # numerical search for y s.t. F(x, y) = 0
            def reevaluate():
                opt.zero_grad()
                z = F(xv,y)**2
                z.backward()
                return z
            opt.step(reevaluate)
        ctx._the_function = F                 # save non-tensors
        ctx.save_for_backward(x, y)           # safely save tensors
        return y
    @staticmethod
    def backward(ctx, output_grad):          # ouput_grad = dl / dy
        x, y = ctx.saved_tensors             # get the saved tensors
        F = ctx._the_function                # other arguments
        with torch.enable_grad():
            xv = x.detach().requires_grad_()
            y = y.detach().requires_grad_()
            z = F(xv,y)
            z.backward()
        return -xv.grad/y.grad*output_grad, None, None, None  # return dl / dx and None for all other inputs
