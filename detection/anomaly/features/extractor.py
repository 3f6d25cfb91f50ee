"""Pluggable feature extractors for the memory-bank and one-class-SVM scorers.

A feature extractor is any ``nn.Module`` with ``features(x) -> list[Tensor]``: for an
(N, 1, S, S) batch in [0, 1], a few middle-layer activation maps (N, C_i, S/s_i, S/s_i). The
project's own one is the discriminative encoder of a DRAEM model trained on defect-free
images (:class:`~detection.anomaly.draem.torch_model.DraemModel`); a classifier trained on NEU
can be plugged in by registering its class here. Untrained (random) features are not an
option: they reach only about 0.6 image AUROC on magnetic tiles.

>>> from detection.anomaly.draem.torch_model import DraemModel
>>> state = extractor_state(DraemModel(base_width=4))
>>> type(extractor_from_state(state)).__name__, state["config"]
('DraemModel', {'base_width': 4})
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from coilmap.errors import InputError


class FeatureExtractor(Protocol):
    def features(self, x: torch.Tensor) -> list[torch.Tensor]: ...


def _registry() -> dict[str, tuple[type[nn.Module], tuple[str, ...]]]:
    """Class name -> (class, names of its constructor arguments kept as attributes)."""
    from detection.anomaly.draem.torch_model import DraemModel
    from detection.anomaly.features.draem_encoders import DraemEncoders
    from detection.anomaly.features.neu import NeuClassifierFeatures
    from detection.anomaly.features.selfsup import PerlinSegNet

    return {
        "DraemModel": (DraemModel, ("base_width",)),
        "DraemEncoders": (DraemEncoders, ("base_width", "n_models", "discriminative_layers",
                                          "reconstructive_layers")),
        "PerlinSegNet": (PerlinSegNet, ("width",)),
        "NeuClassifierFeatures": (
            NeuClassifierFeatures, ("n_classes", "widths", "blocks_per_stage", "mean", "std")
        ),
    }


def extractor_state(module: nn.Module) -> dict[str, Any]:
    """A ``weights_only``-loadable description of a registered extractor, its weights in
    float16 (half the file; fit with :func:`rounded_to_stored` so the bank matches them)."""
    name = type(module).__name__
    registry = _registry()
    if name not in registry:
        raise InputError(f"feature extractor {name} is not registered (known: {sorted(registry)})")
    _, args = registry[name]
    state = {k: v.half() if v.is_floating_point() else v for k, v in module.state_dict().items()}
    return {"class": name, "config": {a: getattr(module, a) for a in args}, "state": state}


def rounded_to_stored(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with its weights rounded as :func:`extractor_state` stores them, so
    that features computed while fitting are those a loaded model computes."""
    if type(module).__name__ not in _registry():
        return module  # not storable anyway: extractor_state names the problem when saving
    return extractor_from_state(extractor_state(module))


def extractor_from_state(state: dict[str, Any]) -> nn.Module:
    registry = _registry()
    name = state.get("class")
    if name not in registry:
        raise InputError(f"unknown feature extractor {name!r} (known: {sorted(registry)})")
    cls, _ = registry[name]
    module = cls(**state["config"])
    module.load_state_dict(state["state"])  # float16 weights are copied into float32 ones
    return module.eval()
