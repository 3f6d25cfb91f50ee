"""Classifiers combined: several trained networks, their class probabilities averaged.

One run of the NEU recipe scores 97.5-100 % on the held-out test part depending on its seed
(docs/detection-classification.md, "Seeds"). Averaging the probabilities of a few runs removes
part of that variance without training anything more. Each member keeps its own input size,
normalisation and number of averaged symmetries (``tta``); a ``tta`` passed at prediction (the
detection worker's views for line use) applies to every member.

Members must share the class list, in the same order.

>>> rng = np.random.default_rng(0)
>>> imgs = [rng.random((24, 24)).astype(np.float32) * (0.3 if i % 2 else 1.0) for i in range(8)]
>>> def one(seed): return DefectClassifier(input_px=32, widths=(4, 8), epochs=1, batch_size=4,
...                                      seed=seed).fit(imgs, [i % 2 for i in range(8)], classes=["a", "b"])
>>> both = ClassifierEnsemble([one(0), one(1)])
>>> both.predict_proba(imgs[:3]).shape, both.embed([np.zeros((50, 70))]).shape
((3, 2), (1, 16))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coilmap.errors import InputError
from detection.classifier.artefact import save_model
from detection.classifier.estimator import DefectClassifier

ARCHITECTURE = "ClassifierEnsemble"


class ClassifierEnsemble(DefectClassifier):
    """The mean class probabilities of ``members``: a :class:`DefectClassifier` for every
    caller (``predict_proba``, ``predict``, ``embed``, ``save``, ``classes_``)."""

    def __init__(self, members: Sequence[DefectClassifier]) -> None:
        if len(members) < 2:
            raise InputError("a classifier ensemble needs at least two members")
        nested = [i for i, m in enumerate(members, start=1) if isinstance(m, ClassifierEnsemble)]
        if nested:
            raise InputError(f"member {nested[0]} is itself an ensemble: combine its member files instead")
        first = members[0]
        for i, m in enumerate(members[1:], start=2):
            if list(m.classes_) != list(first.classes_):
                raise InputError(
                    f"member {i} has classes {m.classes_}; member 1 has {first.classes_} "
                    "(they must be the same, in the same order)"
                )
        # DefectClassifier's parameters as member 1's (input_px, tta, ...); each member
        # predicts with its own
        super().__init__(**first.get_params())
        self.members = list(members)
        self.tta = None  # type: ignore[assignment]  # each member's own unless a caller sets it
        self.classes_ = list(first.classes_)
        self.net_ = first.net_  # marks the ensemble as trained for _check_fitted
        self.mean_, self.std_ = first.mean_, first.std_
        self.best_epoch_ = None
        self.history_: list[dict[str, Any]] = []

    def fit(self, *args: Any, **kwargs: Any) -> ClassifierEnsemble:  # type: ignore[override]
        raise InputError("a classifier ensemble is not trained: train its members, then combine them")

    @torch.no_grad()
    def _proba_tensor(self, images01: Sequence[np.ndarray], tta: int | None = None) -> torch.Tensor:
        k = self.tta if tta is None else tta
        return torch.stack([m._proba_tensor(images01, tta=k) for m in self.members]).mean(0)

    @property
    def embedding_dim(self) -> int:
        return sum(m.embedding_dim for m in self.members)

    def embed(self, images01: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """The members' penultimate-layer features side by side (N, sum of their widths)."""
        return np.concatenate([m.embed(images01) for m in self.members], axis=1)

    def features(self, images01: Sequence[np.ndarray] | np.ndarray) -> list[torch.Tensor]:
        raise InputError("a classifier ensemble has no single network's stage outputs; "
                         "use one of its member files")

    def config(self) -> dict[str, Any]:
        return {
            "architecture": ARCHITECTURE,
            "members": [m.config() for m in self.members],
            "classes": list(self.classes_),
            "tta": self.tta,
        }

    def save(self, path: str | Path, manifest: dict[str, Any]) -> Path:
        state = {f"member{i}.{k}": v
                 for i, m in enumerate(self.members) for k, v in m.net_.state_dict().items()}
        return save_model(path, kind="classifier", config=self.config(), state_dict=state, manifest=manifest)

    @classmethod
    def from_config(cls, config: dict[str, Any], state: dict[str, torch.Tensor],
                    path: str | Path) -> ClassifierEnsemble:
        members = []
        for i, member_config in enumerate(config["members"]):
            prefix = f"member{i}."
            sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            members.append(DefectClassifier.from_config(member_config, sub, path))
        ens = cls(members)
        ens.tta = config.get("tta")
        return ens
