def lunif_fast(x, t=2):
    return torch._C._VariableFunctions.pdist(x, 2).pow(2).mul(-t).exp().mean().log()
