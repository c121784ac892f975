def _both(v):
    return v + 2, (v + 1) ** 2


def increment_and_square(a):
    # element by element with torch.func.vmap: legal, and autograd sees through it
    return torch.func.vmap(_both)(a)


def padded_stack(a, b):
    inner = torch.stack((a, b))
    return torch.nn.functional.pad(inner, (1, 1, 1, 1))
