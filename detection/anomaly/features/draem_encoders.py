"""The discriminative encoders of several trained DRAEM models, side by side, as one feature
extractor for the memory-bank scorer.

Each DRAEM model's encoder learnt, from its own kind of synthetic anomaly, what sets a
defect apart from the ground surface (:meth:`DraemModel.features`: strides 4 and 8). A
memory bank over both members' features of the default pair (``surface`` and ``draem``
anomalies) separates real magnetic-tile defects better than either member's features alone
(docs/detection-anomaly.md, "A memory bank over the default pair's encoders").

>>> import torch
>>> from detection.anomaly.draem.torch_model import DraemModel
>>> enc = DraemEncoders.of([DraemModel(base_width=4), DraemModel(base_width=4)])
>>> [tuple(f.shape[1:]) for f in enc.features(torch.rand(1, 1, 64, 64))]
[(8, 16, 16), (16, 8, 8), (8, 16, 16), (16, 8, 8)]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from coilmap.errors import InputError
from detection.anomaly.draem.torch_model import DraemModel


class DraemEncoders(nn.Module):
    """``n_models`` DRAEM models of one ``base_width``; features: each one's, in order."""

    def __init__(self, base_width: int = 16, n_models: int = 2) -> None:
        super().__init__()
        self.base_width = base_width
        self.n_models = n_models
        self.models = nn.ModuleList(DraemModel(base_width) for _ in range(n_models))

    @classmethod
    def of(cls, models: Sequence[DraemModel]) -> DraemEncoders:
        """A copy of trained ``models`` (all of one width) as one extractor."""
        widths = {m.base_width for m in models}
        if not models or len(widths) != 1:
            raise InputError("DRAEM encoders: one or more DRAEM models of one base width")
        out = cls(widths.pop(), len(models))
        for mine, theirs in zip(out.models, models, strict=True):
            mine.load_state_dict(theirs.state_dict())
        return out.eval()

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [f for m in self.models for f in m.features(x)]
