class MyModel(torch.nn.Sequential):
    def __init__(self, hidden=10):
        super().__init__(
            torch.nn.Linear(1, hidden),
            torch.nn.Tanh(),
            torch.nn.Linear(hidden, 1),
        )
