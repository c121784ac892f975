def increment_and_square(a):
    b1 = a + 2
    b2 = (a + 1) ** 2
    return b1, b2


def padded_stack(a, b):
    a.unsqueeze_(0)
    b.unsqueeze_(0)
    return torch.nn.functional.pad(torch.cat([a, b]), (1, 1, 1, 1))
