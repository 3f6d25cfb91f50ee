"""PatchCore scorer: builds the memory bank from defect-free images (no gradient training).

The feature extractor must be *learned* (a trained DRAEM model's discriminative encoder by
default, see :mod:`detection.anomaly.features.extractor`); it is stored inside the artefact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from coilmap.errors import InputError
from detection.anomaly.base import AnomalyScorer, Images, check_images
from detection.anomaly.features.extractor import extractor_from_state, extractor_state, rounded_to_stored
from detection.anomaly.patchcore.torch_model import PatchCoreModel, greedy_coreset, random_projection


class PatchCoreScorer(AnomalyScorer):
    """Nearest-neighbour distance to a coreset of normal patch features.

    The image score is the maximum of the (smoothed) map: one far-from-normal patch makes a
    defect image. ``normalise``: as :class:`~detection.anomaly.draem.scorer.DraemScorer`, set
    it when the features come from a model trained on gain-normalised images.
    """

    kind = "patchcore"

    def __init__(
        self,
        *,
        feature_extractor: nn.Module | None = None,
        input_size: int = 128,
        input_scale: float | None = None,
        patch_stride_px: int = 8,
        coreset_size: int = 4000,
        max_candidates: int = 100_000,
        projection_dim: int = 64,
        bank_dim: int | None = None,
        blur_sigma: float = 4.0,
        image_quantile: float = 0.98,
        pixel_quantile: float = 0.995,
        normalise: bool = False,
        seed: int = 0,
    ) -> None:
        self.feature_extractor = feature_extractor
        self.input_size = input_size
        self.input_scale = input_scale
        self.patch_stride_px = patch_stride_px
        self.coreset_size = coreset_size
        self.max_candidates = max_candidates
        self.projection_dim = projection_dim
        self.bank_dim = bank_dim
        self.blur_sigma = blur_sigma
        self.image_quantile = image_quantile
        self.pixel_quantile = pixel_quantile
        self.normalise = normalise
        self.seed = seed

    def fit(self, X: Images, y: Any = None, *, X_val: Images | None = None) -> PatchCoreScorer:
        if self.feature_extractor is None:
            raise InputError(
                "PatchCore needs a learned feature extractor (for example a trained DRAEM "
                "scorer's model_); random features score only about 0.6 AUROC"
            )
        train_images = check_images(X, what="training images")
        model = PatchCoreModel(rounded_to_stored(self.feature_extractor).eval(), blur_sigma=self.blur_sigma,
                               patch_stride_px=self.patch_stride_px)
        with torch.inference_mode():
            embs = []
            for batch in self._batches(train_images):
                e = model.embed(batch)
                embs.append(e.permute(0, 2, 3, 1).reshape(-1, e.shape[1]))
            bank = torch.cat(embs)
            if self.bank_dim:  # patches compared in a random projection: a smaller bank
                model.bank_projection = random_projection(bank.shape[1], self.bank_dim, self.seed)
                bank = bank @ model.bank_projection
            gen = torch.Generator().manual_seed(self.seed)
            if len(bank) > self.max_candidates:
                bank = bank[torch.randperm(len(bank), generator=gen)[: self.max_candidates]]
            keep = greedy_coreset(bank, self.coreset_size, projection_dim=self.projection_dim,
                                  seed=self.seed)
            # float16-representable, as the file stores it (half the file; ~1e-3 relative)
            model.memory_bank = bank[keep].half().float()
        self.model_ = model
        self.memory_bank_ = model.memory_bank
        val = check_images(X_val, what="validation images") if X_val is not None else train_images
        self._calibrate(val, image_quantile=self.image_quantile, pixel_quantile=self.pixel_quantile)
        return self

    def _score_batch(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        maps = self.model_(batch)
        return maps.numpy(), maps.flatten(1).amax(1).numpy()

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        # the extractor is a learned module, stored in the state rather than the parameters
        return super().get_params(deep=False)

    def _get_state(self) -> dict[str, Any]:
        return {"extractor": extractor_state(self.model_.feature_extractor), **self.bank_state()}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.use_bank(extractor_from_state(state["extractor"]), state)

    def bank_state(self) -> dict[str, torch.Tensor]:
        """The memory bank (and its projection, if any) as stored: float16."""
        return {"memory_bank": self.memory_bank_.half(),
                "bank_projection": self.model_.bank_projection.half()}

    def use_bank(self, extractor: nn.Module, state: dict[str, Any]) -> None:
        """Score with ``extractor`` and a stored :meth:`bank_state` (thresholds are set apart)."""
        self.feature_extractor = extractor
        self.model_ = PatchCoreModel(extractor, blur_sigma=self.blur_sigma,
                                     patch_stride_px=self.patch_stride_px)
        self.model_.memory_bank = state["memory_bank"].float()
        self.model_.bank_projection = state.get("bank_projection", torch.empty(0)).float()
        self.memory_bank_ = self.model_.memory_bank
