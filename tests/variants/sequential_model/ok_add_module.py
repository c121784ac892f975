from collections import OrderedDict


class MyModel(torch.nn.Sequential):
    def __init__(self, hidden=10):
        layers = OrderedDict()
        layers["0"] = torch.nn.Linear(1, hidden)
        layers["1"] = torch.nn.Tanh()
        layers["2"] = torch.nn.Linear(hidden, 1)
        super().__init__(layers)
