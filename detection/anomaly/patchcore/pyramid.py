"""PatchCore at several scales over one shared feature extractor.

One memory bank per scale, each scale's map and image score divided by its own defect-free
threshold and averaged (as :class:`~detection.anomaly.ensemble.scorer.EnsembleScorer` does
for separate models), the extractor stored once. Why: on magnetic tiles a bank over the
default DRAEM pair's encoders at a tenth to a quarter of the image's size separates real
defects far better than at the DRAEM scoring scale (each working pixel then sees more of the
ground pattern), and scales disagree on which defects they find (thin cracks at 0.1-0.15,
breaks at 0.25), so their mean is better than any one of them (docs/detection-anomaly.md,
"A memory bank over the pair's encoders").

>>> import numpy as np
>>> from detection.anomaly.draem.torch_model import DraemModel
>>> rng = np.random.default_rng(0)
>>> imgs = [rng.random((60, 80)).astype(np.float32) for _ in range(6)]
>>> p = PatchCorePyramid(feature_extractor=DraemModel(base_width=4), input_scales=(0.5, 1.0),
...                      coreset_size=50).fit(imgs[:4], X_val=imgs[4:])
>>> [m.shape for m in p.score_maps(imgs[:2])], p.predict(imgs[:2]).shape
([(60, 80), (60, 80)], (2,))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from coilmap.errors import InputError
from detection.anomaly.base import Images, check_images
from detection.anomaly.ensemble.scorer import EnsembleScorer
from detection.anomaly.features.extractor import extractor_from_state, extractor_state
from detection.anomaly.patchcore.scorer import PatchCoreScorer


class PatchCorePyramid(EnsembleScorer):
    """Threshold-scaled mean of one :class:`PatchCoreScorer` per ``input_scales`` entry."""

    kind = "patchcore_pyramid"

    def __init__(
        self,
        *,
        feature_extractor: nn.Module | None = None,
        input_scales: Sequence[float] = (0.075, 0.1, 0.15, 0.2, 0.25),
        coreset_size: int = 4000,
        bank_dim: int | None = None,
        patch_stride_px: int = 8,
        blur_sigma: float = 4.0,
        normalise: bool = False,
        image_quantile: float = 0.98,
        pixel_quantile: float = 0.995,
        seed: int = 0,
    ) -> None:
        self.feature_extractor = feature_extractor
        self.input_scales = input_scales
        self.coreset_size = coreset_size
        self.bank_dim = bank_dim
        self.patch_stride_px = patch_stride_px
        self.blur_sigma = blur_sigma
        self.normalise = normalise
        self.image_quantile = image_quantile
        self.pixel_quantile = pixel_quantile
        self.seed = seed

    def _level(self, scale: float, extractor: nn.Module) -> PatchCoreScorer:
        # every level normalises; scoring, the ensemble takes each image's median once for all
        return PatchCoreScorer(
            feature_extractor=extractor, input_scale=float(scale), coreset_size=self.coreset_size,
            bank_dim=self.bank_dim,
            patch_stride_px=self.patch_stride_px, blur_sigma=self.blur_sigma,
            normalise=self.normalise, image_quantile=self.image_quantile,
            pixel_quantile=self.pixel_quantile, seed=self.seed,
        )

    def fit(self, X: Images | None = None, y: Any = None, *, X_val: Images | None = None) -> PatchCorePyramid:
        """One bank per scale from ``X`` (defect-free), thresholds from ``X_val``."""
        if self.feature_extractor is None:
            raise InputError("a PatchCore pyramid needs a learned feature extractor (a trained "
                             "DRAEM model or pair)")
        scales = [float(s) for s in self.input_scales]
        if not scales or any(not 0 < s <= 4 for s in scales) or len(set(scales)) != len(scales):
            raise InputError(f"input scales: distinct factors in (0, 4], not {list(self.input_scales)}")
        if X_val is None:
            raise InputError("a PatchCore pyramid sets its thresholds from defect-free validation images")
        train = check_images(X, what="training images")
        val = check_images(X_val, what="validation images")
        self.members_ = [self._level(s, self.feature_extractor).fit(train, X_val=val) for s in scales]
        self._calibrate(val, image_quantile=self.image_quantile, pixel_quantile=self.pixel_quantile)
        return self

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        params = super(EnsembleScorer, self).get_params(deep=False)
        params["input_scales"] = [float(s) for s in params["input_scales"]]
        return params

    def _get_state(self) -> dict[str, Any]:
        levels = [{**m.bank_state(), "threshold": m.threshold_, "pixel_threshold": m.pixel_threshold_}
                  for m in self.members_]
        # every level draws the same projection (same seed and sizes): stored once
        projection = levels[0]["bank_projection"]
        shared = all(torch.equal(lv["bank_projection"], projection) for lv in levels)
        if shared:
            for lv in levels:
                del lv["bank_projection"]
        return {"extractor": extractor_state(self.members_[0].model_.feature_extractor),
                "bank_projection": projection if shared else torch.empty(0), "levels": levels}

    def _set_state(self, state: dict[str, Any]) -> None:
        extractor = extractor_from_state(state["extractor"])
        self.feature_extractor = extractor
        levels = state["levels"]
        if len(levels) != len(self.input_scales):
            raise InputError(f"{len(levels)} memory banks for {len(self.input_scales)} scales")
        self.members_ = []
        for scale, level in zip(self.input_scales, levels, strict=True):
            m = self._level(scale, extractor)
            m.use_bank(extractor, {"bank_projection": state.get("bank_projection", torch.empty(0)),
                                   **level})
            m.threshold_, m.pixel_threshold_ = float(level["threshold"]), float(level["pixel_threshold"])
            self.members_.append(m)
        self.members = self.members_
