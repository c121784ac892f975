def increment_and_square(a):
    return a.add(2), a.add(1).pow(2)


def padded_stack(a, b):
    rows = torch.stack([a, b])
    side = rows.new_zeros(2, 1)
    middle = torch.cat([side, rows, side], dim=1)
    edge = rows.new_zeros(1, middle.shape[1])
    return torch.cat([edge, middle, edge], dim=0)
