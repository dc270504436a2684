"""A small inverted-residual CNN with squeeze-excitation (MobileNetV2 / EfficientNet MBConv blocks)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SqueezeExcite(nn.Module):
    """x · sigmoid(expand(silu(reduce(mean over space of x)))): a 1×1 bottleneck of `units` gating `channels`."""

    def __init__(self, channels: int, units: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, units, 1)
        self.expand = nn.Conv2d(units, channels, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.expand(F.silu(self.reduce(x.mean((2, 3), keepdim=True)))))


class MBConv(nn.Module):
    """Expand 1×1 + BN + SiLU, depthwise 3×3 + BN + SiLU, SE, project 1×1 + BN, residual add where shapes match."""

    def __init__(self, cin: int, cout: int, expand: int, se: int):
        super().__init__()
        hidden = cin * expand
        self.expand = nn.Conv2d(cin, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.se = SqueezeExcite(hidden, se)
        self.project = nn.Conv2d(hidden, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.residual = cin == cout

    def forward(self, x):
        y = F.silu(self.bn1(self.expand(x)))
        y = self.se(F.silu(self.bn2(self.dw(y))))
        y = self.bn3(self.project(y))
        return x + y if self.residual else y


class BottleneckNet(nn.Module):
    """Stem 3×3 (8) + BN, MBConv 8→8 (×6, SE 2), MBConv 8→8 (×6, SE 2), MBConv 8→12 (×4, SE 2), head 1×1 (16), pool, linear.

    Groups: the residual stream 8 (stem, both residual blocks' projections, the third
    block's expand input), each block's expanded channels (48, 48, 32) and SE units
    (2, 2, 2), the third block's output 12 and the head's 16: [2, 2, 2, 8, 12, 16, 32, 48, 48].
    """

    def __init__(self, blocks=((8, 6, 2), (8, 6, 2), (12, 4, 2))):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(8)
        layers, c = [], 8
        for cout, e, r in blocks:
            layers.append(MBConv(c, cout, e, r))
            c = cout
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Conv2d(c, 16, 1, bias=False)
        self.bnh = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.blocks(F.silu(self.bn0(self.stem(x))))
        return self.fc(F.silu(self.bnh(self.head(x))).mean((2, 3)))


GROUP_SIZES = [2, 2, 2, 8, 12, 16, 32, 48, 48]


@torch.no_grad()
def bottleneck_net(seed: int, blocks=((8, 6, 2), (8, 6, 2), (12, 4, 2))) -> nn.Module:
    """A freshly initialized BottleneckNet (eval mode), BatchNorm made non-degenerate.

    PyTorch's init leaves every BatchNorm weight 1 and bias 0; they get 0.1-scale noise
    (as the parser catalogue does) and the running statistics random values.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BottleneckNet(blocks)
        for name, t in model.state_dict().items():
            if name.endswith(("running_mean", "running_var")):
                t.copy_(0.1 * torch.randn_like(t) if name.endswith("mean") else torch.rand_like(t) + 0.5)
            elif t.is_floating_point() and bool((t == t.reshape(-1)[0]).all()):
                t.add_(0.1 * torch.randn_like(t))
    return model.eval()
