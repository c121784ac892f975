class MyModel(torch.nn.Sequential):
    def __init__(self, hidden=10):
        super().__init__()
        self.append(torch.nn.Linear(1, hidden))
        self.append(torch.nn.Tanh())
        self.append(torch.nn.Linear(hidden, 1))
