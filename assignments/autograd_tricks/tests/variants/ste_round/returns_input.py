def ste_round(x):
    return x  # a known-bad answer: the rubric must take its points away
