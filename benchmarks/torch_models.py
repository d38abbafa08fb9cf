"""PyTorch twins of the benchmarked engine models (same layer sizes), for side-by-side timing."""
import torch
from torch import nn


def lenet():
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.SELU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 32, 5), nn.SELU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(800, 256), nn.SELU(), nn.Dropout(0.5), nn.Linear(256, 10))


def mlp(sizes):
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1]))


class _Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        return torch.relu(self.body(x) + self.down(x))


def resnet18(classes=1000):
    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [_Basic(cin, cout, stride), _Basic(cout, cout, 1)]
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes))


class UNet(nn.Module):
    def __init__(self, depth=3, base=16, cin=1, classes=1, dropout=0.1):
        super().__init__()
        def block(a, b):
            return nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Conv2d(b, b, 3, padding=1), nn.ReLU())
        self.down, self.up, self.upconv = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        c = cin
        for i in range(depth):
            self.down.append(block(c, base * 2 ** i))
            c = base * 2 ** i
        self.mid = block(c, c * 2)
        c *= 2
        for i in reversed(range(depth)):
            self.upconv.append(nn.ConvTranspose2d(c, base * 2 ** i, 2, stride=2))
            self.up.append(block(base * 2 ** i * 2, base * 2 ** i))
            c = base * 2 ** i
        self.out = nn.Conv2d(c, classes, 1)

    def forward(self, x):
        skips = []
        for d in self.down:
            x = d(x)
            skips.append(x)
            x = torch.max_pool2d(x, 2)
        x = self.mid(x)
        for uc, u, s in zip(self.upconv, self.up, reversed(skips)):
            x = u(torch.cat([s, uc(x)], 1))
        return torch.sigmoid(self.out(x))
