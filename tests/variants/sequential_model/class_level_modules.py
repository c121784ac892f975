class MyModel(torch.nn.Sequential):
    activation = torch.nn.Tanh()

    def __init__(self, hidden=10):
        super().__init__(torch.nn.Linear(1, hidden), self.activation, torch.nn.Linear(hidden, 1))
