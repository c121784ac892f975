import torch.nn.functional as F


def lunif_fast(x, t=2):
    return F.pdist(x).pow(2).mul(-t).exp().mean().log()
