"""pytorch/examples `mnist/main.py` re-implemented for the side-by-side benchmark.

Same network (conv32-conv64-maxpool-dropout0.25-fc128-dropout0.5-fc10, log-softmax),
same optimiser (Adadelta, lr 1.0, StepLR gamma 0.7 per epoch), batch 64, 14 epochs, and
the same input normalisation (mean 0.1307, std 0.3081). Written from the published
description, not copied. Differences, for a fair comparison: it trains on the same 54k
split as every other contender (the original uses all 60k), and batches come from
in-memory tensors instead of a DataLoader. Needs the optional extra `[bench]` (torch).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

MEAN, STD = 0.1307, 0.3081  # MNIST pixel statistics the original normalises with
EPOCHS, BATCH_SIZE, LEARNING_RATE, GAMMA = 14, 64, 1.0, 0.7


def build_net(num_classes: int = 10):
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)  # -> (32, 26, 26)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)  # -> (64, 24, 24), pooled to (64, 12, 12)
            self.dropout1 = nn.Dropout(0.25)
            self.dropout2 = nn.Dropout(0.5)
            self.fc1 = nn.Linear(64 * 12 * 12, 128)
            self.fc2 = nn.Linear(128, num_classes)

        def forward(self, x):
            x = torch.relu(self.conv1(x))
            x = torch.relu(self.conv2(x))
            x = torch.flatten(self.dropout1(torch.max_pool2d(x, 2)), 1)
            x = self.dropout2(torch.relu(self.fc1(x)))
            return torch.log_softmax(self.fc2(x), dim=1)

    return Net()


def to_tensor(images: np.ndarray):
    """float32 (N, 28, 28, 1) in [0, 1] -> normalised torch tensor (N, 1, 28, 28)."""
    import torch

    return (torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))) - MEAN) / STD


def predict_probabilities(net, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    import torch

    net.eval()
    x = to_tensor(images)
    with torch.no_grad():
        out = [torch.exp(net(x[i: i + batch_size])) for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy()


def train(x_train: np.ndarray, y_train: np.ndarray, seed: int, epochs: int = EPOCHS,
          on_epoch_end: Callable[[int, object], None] | None = None):
    """Train the reference net; `on_epoch_end(epoch, net)` is called after each epoch, untimed by us."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    net = build_net()
    optimizer = torch.optim.Adadelta(net.parameters(), lr=LEARNING_RATE)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=GAMMA)
    x, y = to_tensor(x_train), torch.from_numpy(y_train.astype(np.int64))
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), BATCH_SIZE):
            batch = order[start: start + BATCH_SIZE]
            optimizer.zero_grad()
            loss = F.nll_loss(net(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
        scheduler.step()
        if on_epoch_end is not None:
            on_epoch_end(epoch, net)
    return net
