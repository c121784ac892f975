def ste_round(x):
    return x.detach().round().requires_grad_()  # a new leaf: x is not in its graph
