from collections import OrderedDict


class MyModel(torch.nn.Sequential):
    def __init__(self, hidden=10):
        # Named like the plain Sequential's positional layers, so state dicts load both ways.
        super().__init__(OrderedDict([
            ("0", torch.nn.Linear(1, hidden)),
            ("1", torch.nn.Tanh()),
            ("2", torch.nn.Linear(hidden, 1)),
        ]))
