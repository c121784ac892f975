class MyModel(torch.nn.Sequential):
    def __init__(self, hidden=10, activation=torch.nn.Tanh()):
        super().__init__(torch.nn.Linear(1, hidden), activation, torch.nn.Linear(hidden, 1))
