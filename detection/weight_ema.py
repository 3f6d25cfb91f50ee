"""An exponential moving average of a network's weights during training (Polyak averaging).

Why: a network's weights at the end of any one epoch carry the last batches' noise, and which
epoch validates best is a coin toss among near-equal ones; the average over the last few
hundred steps is a smoother model, and a run's seed might matter less (the reason it was tried:
five runs of the NEU classifier's recipe scored 97.5-100 %). On NEU it validated steadily and
lower, and was not taken (docs/detection-classification.md, "Steadier single runs?").

Every floating-point entry of the state dict is averaged, BatchNorm running statistics
included; integer entries (BatchNorm's batch counter) are copied. The decay warms up as
``min(decay, (1 + t) / (10 + t))`` so the first steps' random weights fade quickly.

>>> import torch
>>> net = torch.nn.Linear(1, 1, bias=False)
>>> with torch.no_grad():
...     _ = net.weight.fill_(0.0)
>>> ema = WeightEma(net, decay=0.5)
>>> with torch.no_grad():
...     _ = net.weight.fill_(1.0)
>>> ema.update(net)
>>> with torch.no_grad():
...     _ = net.weight.fill_(3.0)
>>> ema.update(net)
>>> with ema.applied(net):
...     round(float(net.weight), 4)
2.6182
>>> float(net.weight)
3.0
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class WeightEma:
    """The running average of ``net``'s state dict; :meth:`update` after each optimiser step."""

    def __init__(self, net: nn.Module, *, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must lie in (0, 1), not {decay}")
        self.decay = decay
        self.steps = 0
        self.state = {k: v.detach().clone() for k, v in net.state_dict().items()}

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for k, v in net.state_dict().items():
            if v.is_floating_point():
                self.state[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.state[k].copy_(v)
        self.steps += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        """A copy of the averaged weights."""
        return copy.deepcopy(self.state)

    @contextmanager
    def applied(self, net: nn.Module) -> Iterator[nn.Module]:
        """``net`` with the averaged weights inside the block, its own weights restored after."""
        own = copy.deepcopy(net.state_dict())
        net.load_state_dict(self.state)
        try:
            yield net
        finally:
            net.load_state_dict(own)
