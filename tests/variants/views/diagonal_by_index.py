def last_columns(t, k):
    return t[:, t.shape[1] - k:]


def diagonal(t):
    n = min(t.shape)
    return t[range(n), range(n)]


def every_other_column(t):
    return t[:, ::2]
