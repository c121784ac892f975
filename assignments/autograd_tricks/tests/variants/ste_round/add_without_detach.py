def ste_round(x):
    return x + (x.round() - x)  # the right values, but the gradient is 1 + (0 - 1) = 0
