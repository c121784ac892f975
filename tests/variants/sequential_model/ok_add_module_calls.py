class MyModel(torch.nn.Sequential):
    def __init__(self, hidden: int = 10) -> None:
        super().__init__()
        self.add_module("0", torch.nn.Linear(1, hidden))
        self.add_module("1", torch.nn.Tanh())
        self.add_module("2", torch.nn.Linear(hidden, 1))
