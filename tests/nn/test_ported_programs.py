"""Two of the programs #13 ported from PyTorch, written the way a PyTorch user writes them (a small ResNet and a
quantile-regression MLP, ``torch.`` read as ``tg.``): they must run unchanged and learn.

The third, a character-level GPT, is ``examples/train_gpt.py`` (and tests/nn/test_torch_idioms.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import tg
import tg.nn.functional as F
from tg import nn, optim


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class ResNet(nn.Module):
    def __init__(self, num_blocks: list[int], num_classes: int = 10):
        super().__init__()
        self.in_planes = 8
        self.conv1 = nn.Conv2d(1, 8, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1 = self._make_layer(8, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(16, num_blocks[1], stride=2)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.linear = nn.Linear(16 * BasicBlock.expansion, num_classes)

    def _make_layer(self, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes * BasicBlock.expansion
        return nn.Sequential(*layers)

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer2(self.layer1(out))
        out = self.pool(out)
        out = tg.flatten(out, 1)
        return self.linear(out)


def test_a_small_resnet_learns_digits() -> None:
    datasets = pytest.importorskip("sklearn.datasets", reason="the digits come with scikit-learn "
                                   "(pip install './core[examples]'; nox's examples session has it)")
    load_digits = datasets.load_digits

    tg.manual_seed(0)
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None][:512]
    y = digits.target.astype(np.int64)[:512]
    device = "cuda" if tg.cuda.is_available() else "cpu"
    model = ResNet([1, 1]).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=16, gamma=0.5)
    model.train()
    losses = []
    for _epoch in range(3):
        for i in range(0, len(x), 64):
            inputs = tg.tensor(x[i:i + 64]).to(device)
            targets = tg.tensor(y[i:i + 64]).to(device)
            optimizer.zero_grad()
            outputs = model(inputs)
            loss = criterion(outputs, targets)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
    model.eval()
    with tg.no_grad():
        predicted = model(tg.tensor(x[:256]).to(device)).argmax(dim=1)
        accuracy = (predicted == tg.tensor(y[:256]).to(device)).float().mean().item()
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:4]), losses
    assert accuracy > 0.5, accuracy
    assert scheduler.get_last_lr()[0] == 0.1 * 0.5 ** (len(losses) // 16)


class QuantileMLP(nn.Module):
    def __init__(self, quantiles: list[float]):
        super().__init__()
        self.quantiles = quantiles
        self.net = nn.Sequential(nn.Linear(1, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                                 nn.Linear(32, len(quantiles)))

    def forward(self, x: tg.Tensor) -> tg.Tensor:
        return self.net(x)


def pinball_loss(preds: tg.Tensor, target: tg.Tensor, quantiles: list[float]) -> tg.Tensor:
    losses = []
    for i, q in enumerate(quantiles):
        errors = target - preds[:, i]
        losses.append(tg.max((q - 1) * errors, q * errors).unsqueeze(1))
    return tg.cat(losses, dim=1).sum(dim=1).mean()


def test_a_quantile_regression_mlp_brackets_the_data() -> None:
    tg.manual_seed(1)
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (1024, 1)).astype(np.float32)
    y = (np.sin(3 * x[:, 0]) + rng.normal(0, 0.2, 1024)).astype(np.float32)
    quantiles = [0.1, 0.5, 0.9]
    model = QuantileMLP(quantiles)
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    X, Y = tg.from_numpy(x), tg.from_numpy(y)
    for _step in range(150):
        idx = tg.randint(0, 1024, (128,))
        optimizer.zero_grad()
        loss = pinball_loss(model(X[idx]), Y[idx], quantiles)
        loss.backward()
        optimizer.step()
    with tg.no_grad():
        pred = model(X).numpy()
    below = (y[:, None] < pred).mean(axis=0)  # the share of points under each quantile's curve
    np.testing.assert_allclose(below, quantiles, atol=0.08)
