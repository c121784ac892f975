def increment_and_square(a):
    with torch.no_grad():
        b1 = a + 1
        b2 = b1 ** 2
        b1 += 1
    return b1, b2


def padded_stack(a, b):
    c = torch.zeros(4, a.shape[0] + 2, dtype=a.dtype, device=a.device)
    c[1, 1:-1] = a
    c[2, 1:-1] = b
    return c
