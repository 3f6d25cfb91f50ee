"""An ensemble of fitted scorers: each member's map and image score divided by its own
defect-free threshold, then averaged. Members named ``map_only`` add to the map alone (the
default model: a memory-bank pyramid decides, its DRAEM pair sharpens the outlines).

Why: two DRAEM models trained on different synthetic anomalies were better at different things
(one at telling defect images apart, the other at outlining defects); dividing by each
member's threshold puts their scores on one scale ("1 = as high as the top 2 % of defect-free
validation images") before they are averaged. The ensemble's own thresholds are set from the
defect-free validation images again, like every scorer's.

>>> import numpy as np
>>> from detection.anomaly.draem.scorer import DraemScorer
>>> rng = np.random.default_rng(0)
>>> imgs = [rng.random((40, 48)).astype(np.float32) for _ in range(6)]
>>> a = DraemScorer(input_size=32, base_width=4, steps=1, batch_size=2).fit(imgs[:4], X_val=imgs[4:])
>>> b = DraemScorer(input_size=32, base_width=4, steps=1, batch_size=2, seed=1).fit(imgs[:4], X_val=imgs[4:])
>>> e = EnsembleScorer(members=[a, b]).fit(None, X_val=imgs[4:])
>>> [m.shape for m in e.score_maps(imgs[:2])], e.predict(imgs[:2]).shape
([(40, 48), (40, 48)], (2,))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from coilmap.errors import InputError
from detection.anomaly.base import AnomalyScorer, Images, check_images, gain_normalise, resize_maps


class EnsembleScorer(AnomalyScorer):
    """Mean of threshold-scaled members (each a fitted :class:`AnomalyScorer`)."""

    kind = "ensemble"
    input_size = 0  # each member brings its images to its own working size

    def __init__(
        self,
        *,
        members: Sequence[AnomalyScorer] | None = None,
        map_only: Sequence[int] = (),
        image_quantile: float = 0.98,
        pixel_quantile: float = 0.995,
    ) -> None:
        self.members = members
        self.map_only = map_only
        self.image_quantile = image_quantile
        self.pixel_quantile = pixel_quantile

    def fit(self, X: Images | None = None, y: Any = None, *, X_val: Images | None = None) -> EnsembleScorer:
        """Members are fitted already; only the ensemble's thresholds are set, from ``X_val``
        (defect-free validation images; ``X`` is accepted for the contract and not used)."""
        if not self.members or len(self.members) < 2:
            raise InputError("an ensemble needs at least two fitted scorers")
        for m in self.members:
            m._check_fitted()
        if not set(self.map_only) < set(range(len(self.members))):
            raise InputError(f"map-only members {list(self.map_only)}: indices of the "
                             f"{len(self.members)} members, at least one left for the image score")
        if X_val is None:
            raise InputError("an ensemble sets its thresholds from defect-free validation images")
        self.members_ = list(self.members)
        self._calibrate(check_images(X_val, what="validation images"),
                        image_quantile=self.image_quantile, pixel_quantile=self.pixel_quantile)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "members_"):
            raise InputError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def normalises(self) -> bool:
        """Whether any member (or a member's member) gain-normalises its images."""
        return any(m.normalises() if isinstance(m, EnsembleScorer) else getattr(m, "normalise", False)
                   for m in self.members_)

    def _score_all(self, images: list[np.ndarray],
                   normalised: list[np.ndarray] | None = None) -> tuple[list[np.ndarray], np.ndarray]:
        # the median of every full image once, for every member that normalises (the default
        # model's three DRAEM and pyramid members each took it; 1-10 % of its scoring time)
        if normalised is None and self.normalises():
            normalised = [gain_normalise(im) for im in images]
        shapes = [im.shape for im in images]
        total_maps = [np.zeros(shape, np.float32) for shape in shapes]
        total_scores = np.zeros(len(images))
        map_only = set(getattr(self, "map_only", ()))
        for i, m in enumerate(self.members_):
            maps, scores = m._score_all(images, normalised)
            for acc, mp in zip(total_maps, resize_maps(maps, shapes), strict=True):
                acc += mp / m.pixel_threshold_
            if i not in map_only:
                total_scores += scores / m.threshold_
        n = len(self.members_)
        return [t / n for t in total_maps], total_scores / (n - len(map_only))

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        # members are fitted estimators, stored in the state rather than the parameters
        return {"map_only": [int(i) for i in self.map_only], "image_quantile": self.image_quantile,
                "pixel_quantile": self.pixel_quantile}

    def _get_state(self) -> dict[str, Any]:
        from detection.anomaly.artefact import to_dict

        return {"members": [to_dict(m, getattr(m, "training_data_", {})) for m in self.members_]}

    def _set_state(self, state: dict[str, Any]) -> None:
        from detection.anomaly.artefact import from_dict

        self.members_ = [from_dict(blob, "ensemble member") for blob in state["members"]]
        self.members = self.members_
