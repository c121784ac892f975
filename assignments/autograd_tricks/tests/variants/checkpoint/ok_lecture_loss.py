import io


def train(model, opt, batches):
    losses = []
    for x, target in batches:
        pred = model(x)
        loss = ((pred - target) ** 2).sum()  # the lecture's first loop
        loss.backward()
        opt.step()
        opt.zero_grad()  # after the step: the next backward starts from zero all the same
        losses.append(float(loss))
    return losses


def save_checkpoint(model, opt):
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, buffer)
    return buffer.getvalue()


def load_checkpoint(data, model, opt):
    state = torch.load(io.BytesIO(data), weights_only=True)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])

