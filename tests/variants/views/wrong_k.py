def last_columns(t, k):
    return t[:, k:]


def diagonal(t):
    return t.diagonal()


def every_other_column(t):
    return t[:, ::2]
