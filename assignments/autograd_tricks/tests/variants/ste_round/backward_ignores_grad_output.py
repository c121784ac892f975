class RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.round()

    @staticmethod
    def backward(ctx, grad_output):
        return torch.ones_like(grad_output)  # the identity's derivative, without the chain rule


def ste_round(x):
    return RoundSTE.apply(x)
