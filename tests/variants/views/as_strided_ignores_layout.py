def last_columns(t, k):
    return t[:, t.shape[1] - k:]


def diagonal(t):
    return t.as_strided((min(t.shape),), (t.shape[1] + 1,))


def every_other_column(t):
    return t[:, ::2]
