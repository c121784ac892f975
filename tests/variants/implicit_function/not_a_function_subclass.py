class Implicit:
    @staticmethod
    def apply(x, y0, F, max_iter=100):
        y = y0
        for _ in range(min(max_iter, 30)):
            h = 1e-7
            slope = (F(x, y + h) - F(x, y)) / h
            y = y - F(x, y) / slope
        return y
