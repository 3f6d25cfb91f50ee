"""Segmenters combined: several trained networks and flipped views of each image, averaged.

One context aggregation network trained for 13 minutes varies a lot from seed to seed (test mAP
65-77 for the same recipe, docs/detection-classification.md). Averaging the low-resolution mask
logits of several networks, and of the image's mirror views (left-right, up-down, both: the
surface has no preferred orientation, and training flips the same way), removes part of that
variance without training anything. The image-level class scores stay the maxima of the
averaged masks, and the two thresholds are chosen again on validation images, because averaged
logits are less extreme than any one network's.

Members must share the input scale and the pooling factor (their logits are averaged cell by
cell) and the defect classes.

>>> rng = np.random.default_rng(0)
>>> imgs = [rng.random((40, 36)).astype(np.float32) for _ in range(4)]
>>> masks = [np.zeros((40, 36), np.int16) for _ in range(4)]
>>> for m in masks[:2]: m[10:20, 8:16] = 1
>>> one = DefectSegmenter(crop_px=16, width=8, dilations=(1, 2), epochs=1, batch_size=2)
>>> one = one.fit(imgs, masks, classes=["dent"], n_synthetic=0)
>>> both = SegmenterEnsemble([one, one], flips=True).fit(imgs, masks)
>>> both.predict_masks(imgs[:1])[0].shape, both.predict_proba(imgs).shape
((1, 40, 36), (4, 1))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coilmap.errors import InputError
from detection.segmentation.estimator import DefectSegmenter, image_thresholds_of, sub_state

ARCHITECTURE = "SegmenterEnsemble"


class SegmenterEnsemble(DefectSegmenter):
    """The mean low-resolution logits of ``members`` (and, with ``flips``, of each image's
    three mirror views): a :class:`DefectSegmenter` for every caller (``predict``,
    ``predict_proba``, ``predict_masks``, ``predict_all``, ``save``, ``classes_``, thresholds).
    """

    def __init__(
        self, members: Sequence[DefectSegmenter], flips: bool = False, free_alarm_rate: float = 0.05
    ) -> None:
        if not members:
            raise InputError("a segmenter ensemble needs at least one member")
        first = members[0]
        for i, m in enumerate(members[1:], start=2):
            if (m.scale, m.pool, list(m.classes_)) != (first.scale, first.pool, list(first.classes_)):
                raise InputError(
                    f"member {i} has scale {m.scale}, pool {m.pool}, classes {m.classes_}; member 1 "
                    f"has {first.scale}, {first.pool}, {first.classes_} (they must be the same)"
                )
        # the parameters the members share; their own (width, dilations, ...) stay theirs
        super().__init__(scale=first.scale, pool=first.pool, free_alarm_rate=free_alarm_rate)
        self.members = list(members)
        self.flips = flips
        # fitted state for DefectSegmenter's methods: its low-resolution pass is overridden
        # below (every member, every view); net_ only marks the ensemble as trained
        self.classes_ = list(first.classes_)
        self.net_ = first.net_
        self.image_thresholds_ = [float(v) for v in np.mean([m.image_thresholds_ for m in members], 0)]
        self.pixel_threshold_ = float(np.mean([m.pixel_threshold_ for m in members]))
        self.history_: list[dict[str, Any]] = []
        self.best_epoch_ = None

    def fit(  # type: ignore[override]
        self, val_images: Sequence[np.ndarray], val_masks: Sequence[np.ndarray]
    ) -> SegmenterEnsemble:
        """Choose the image and pixel thresholds on validation images (nothing is trained)."""
        if not val_images:
            raise InputError("no validation images to choose the ensemble's thresholds on")
        self._choose_thresholds(val_images, val_masks)
        return self

    @torch.no_grad()
    def _low_res_one(self, image01: np.ndarray) -> torch.Tensor:
        a = np.asarray(image01, dtype=np.float32)
        views = [(a, ())]
        if self.flips:
            views += [(a[:, ::-1], (2,)), (a[::-1], (1,)), (a[::-1, ::-1], (1, 2))]
        outs = []
        for member in self.members:
            for view, axes in views:
                lo = member._low_res_one(np.ascontiguousarray(view))
                outs.append(lo.flip(axes) if axes else lo)
        # A mirrored image padded to a multiple of the pool can end one cell shorter.
        h, w = min(o.shape[1] for o in outs), min(o.shape[2] for o in outs)
        return torch.stack([o[:, :h, :w] for o in outs]).mean(0)

    def config(self) -> dict[str, Any]:
        return {
            "architecture": ARCHITECTURE,
            "flips": self.flips,
            "free_alarm_rate": self.free_alarm_rate,
            "members": [m.config() for m in self.members],
            "classes": list(self.classes_),
            "image_thresholds": list(self.image_thresholds_),
            "pixel_threshold": self.pixel_threshold_,
        }

    def weights(self) -> dict[str, torch.Tensor]:
        return {f"member{i}.{k}": v for i, m in enumerate(self.members) for k, v in m.weights().items()}

    @classmethod
    def from_config(cls, config: dict[str, Any], state: dict[str, torch.Tensor], path: str | Path):  # type: ignore[no-untyped-def]
        members = []
        for i, member_config in enumerate(config["members"]):
            members.append(DefectSegmenter.from_config(member_config, sub_state(state, f"member{i}."), path))
        ens = cls(members, flips=bool(config["flips"]), free_alarm_rate=float(config["free_alarm_rate"]))
        ens.image_thresholds_ = image_thresholds_of(config)
        ens.pixel_threshold_ = float(config["pixel_threshold"])
        return ens
