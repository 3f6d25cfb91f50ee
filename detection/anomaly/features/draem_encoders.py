"""The encoders of several trained DRAEM models, side by side, as one feature extractor for
the memory-bank scorers.

Each DRAEM model learnt from its own kind of synthetic anomaly: its *discriminative* encoder
what sets a defect apart from the ground surface, its *reconstructive* encoder what the
defect-free surface is made of. A memory bank over both encoders of both members of the
default pair (``surface`` and ``draem`` anomalies), strides 4 and 8 of each, separates real
magnetic-tile defects better than the discriminative encoders alone, and those better than
either member alone (docs/detection-anomaly.md, "A memory bank over the pair's encoders").

>>> import torch
>>> from detection.anomaly.draem.torch_model import DraemModel
>>> pair = [DraemModel(base_width=4), DraemModel(base_width=4)]
>>> enc = DraemEncoders.of(pair)
>>> [tuple(f.shape[1:]) for f in enc.features(torch.rand(1, 1, 64, 64))]
[(8, 16, 16), (16, 8, 8), (8, 16, 16), (16, 8, 8)]
>>> both = DraemEncoders.of(pair, reconstructive_layers=(1, 2))
>>> [tuple(f.shape[1:]) for f in both.features(torch.rand(1, 1, 64, 64))][:4]
[(8, 16, 16), (16, 8, 8), (8, 16, 16), (16, 8, 8)]
>>> len(both.features(torch.rand(1, 1, 64, 64)))
8
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from coilmap.errors import InputError
from detection.anomaly.draem.torch_model import DraemModel

_STRIDES = (2, 4, 8, 16)  # of the encoders' four activations


class DraemEncoders(nn.Module):
    """``n_models`` DRAEM models of one ``base_width``. Features, model by model: the
    discriminative encoder's activations ``discriminative_layers`` (indices into strides 2, 4,
    8, 16), then the reconstructive encoder's ``reconstructive_layers``."""

    def __init__(self, base_width: int = 16, n_models: int = 2,
                 discriminative_layers: Sequence[int] = (1, 2),
                 reconstructive_layers: Sequence[int] = ()) -> None:
        super().__init__()
        layers = [*discriminative_layers, *reconstructive_layers]
        if not discriminative_layers or any(i not in range(len(_STRIDES)) for i in layers):
            raise InputError(f"DRAEM encoder layers: indices 0-3 (strides {_STRIDES}), at least "
                             f"one discriminative one; not {list(discriminative_layers)} / "
                             f"{list(reconstructive_layers)}")
        self.base_width = base_width
        self.n_models = n_models
        self.discriminative_layers = [int(i) for i in discriminative_layers]
        self.reconstructive_layers = [int(i) for i in reconstructive_layers]
        self.models = nn.ModuleList(DraemModel(base_width) for _ in range(n_models))

    @classmethod
    def of(cls, models: Sequence[DraemModel], *, discriminative_layers: Sequence[int] = (1, 2),
           reconstructive_layers: Sequence[int] = ()) -> DraemEncoders:
        """A copy of trained ``models`` (all of one width) as one extractor."""
        widths = {m.base_width for m in models}
        if not models or len(widths) != 1:
            raise InputError("DRAEM encoders: one or more DRAEM models of one base width")
        out = cls(widths.pop(), len(models), discriminative_layers, reconstructive_layers)
        for mine, theirs in zip(out.models, models, strict=True):
            mine.load_state_dict(theirs.state_dict())
        return out.eval()

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        out: list[torch.Tensor] = []
        for m in self.models:
            rec = m.reconstructive.encode(x)
            recon = m.reconstructive.decode(rec[-1])
            dis = m.discriminative.encode(torch.cat([x, recon], dim=1))
            out += [dis[i] for i in self.discriminative_layers]
            out += [rec[i] for i in self.reconstructive_layers]
        return out
