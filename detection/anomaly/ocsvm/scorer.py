"""One-class SVM on learned patch features: the simple baseline (as in the unit-image paper,
which runs a one-class SVM over discriminator features).

scikit-learn's :class:`~sklearn.svm.OneClassSVM` (RBF kernel) is fitted on a random sample of
locally aware patch features of defect-free images (the same embedding PatchCore uses); the
anomaly of a patch is minus its SVM decision value. Scoring re-implements the RBF decision
function in torch from the support vectors, so a saved model is plain tensors and patches are
scored as one matrix product.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.svm import OneClassSVM
from torch import nn
from torch.nn import functional as F

from coilmap.errors import InputError
from detection.anomaly.base import AnomalyScorer, Images, check_images
from detection.anomaly.features.extractor import extractor_from_state, extractor_state, rounded_to_stored
from detection.anomaly.patchcore.torch_model import PatchCoreModel, gaussian_blur


class OcsvmScorer(AnomalyScorer):
    """RBF one-class SVM over patch embeddings; map = -decision value, image score = max."""

    kind = "ocsvm"

    def __init__(
        self,
        *,
        feature_extractor: nn.Module | None = None,
        input_size: int = 128,
        input_scale: float | None = None,
        patch_stride_px: int = 8,
        n_samples: int = 6000,
        nu: float = 0.05,
        image_quantile: float = 0.98,
        pixel_quantile: float = 0.995,
        seed: int = 0,
    ) -> None:
        self.feature_extractor = feature_extractor
        self.input_size = input_size
        self.input_scale = input_scale
        self.patch_stride_px = patch_stride_px
        self.n_samples = n_samples
        self.nu = nu
        self.image_quantile = image_quantile
        self.pixel_quantile = pixel_quantile
        self.seed = seed

    def _embedder(self) -> PatchCoreModel:
        return PatchCoreModel(rounded_to_stored(self.feature_extractor).eval(),  # type: ignore[arg-type]
                              patch_stride_px=self.patch_stride_px)

    def fit(self, X: Images, y: Any = None, *, X_val: Images | None = None) -> OcsvmScorer:
        if self.feature_extractor is None:
            raise InputError("the one-class SVM needs a learned feature extractor")
        train_images = check_images(X, what="training images")
        embedder = self._embedder()
        with torch.inference_mode():
            embs = []
            for batch in self._batches(train_images):
                e = embedder.embed(batch)
                embs.append(e.permute(0, 2, 3, 1).reshape(-1, e.shape[1]))
            feats = torch.cat(embs)
        gen = torch.Generator().manual_seed(self.seed)
        sample = feats[torch.randperm(len(feats), generator=gen)[: self.n_samples]].numpy()
        # standardise so that 'scale' gamma treats every channel alike
        self.mean_ = torch.from_numpy(sample.mean(0))
        self.std_ = torch.from_numpy(sample.std(0) + 1e-6)
        z = (sample - self.mean_.numpy()) / self.std_.numpy()
        svm = OneClassSVM(kernel="rbf", gamma="scale", nu=self.nu).fit(z)
        self.support_vectors_ = torch.from_numpy(svm.support_vectors_.astype(np.float32))
        self.dual_coef_ = torch.from_numpy(svm.dual_coef_[0].astype(np.float32))
        self.intercept_ = float(svm.intercept_[0])
        self.gamma_ = float(svm._gamma)
        self.embedder_ = embedder
        val = check_images(X_val, what="validation images") if X_val is not None else train_images
        self._calibrate(val, image_quantile=self.image_quantile, pixel_quantile=self.pixel_quantile)
        return self

    def _score_batch(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        emb = self.embedder_.embed(batch)
        n, c, h, w = emb.shape
        z = (emb.permute(0, 2, 3, 1).reshape(-1, c) - self.mean_) / self.std_
        sv = self.support_vectors_
        d2 = (z**2).sum(1, keepdim=True) - 2 * z @ sv.T + (sv**2).sum(1)[None]
        decision = torch.exp(-self.gamma_ * d2.clamp_min(0)) @ self.dual_coef_ + self.intercept_
        maps = (-decision).view(n, 1, h, w)
        maps = F.interpolate(maps, size=batch.shape[-2:], mode="bilinear", align_corners=False)
        maps = gaussian_blur(maps, 4.0)[:, 0]  # as PatchCore: sigma 4 working pixels
        return maps.numpy(), maps.flatten(1).amax(1).numpy()

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return super().get_params(deep=False)

    def _get_state(self) -> dict[str, Any]:
        return {
            "extractor": extractor_state(self.embedder_.feature_extractor),
            "support_vectors": self.support_vectors_,
            "dual_coef": self.dual_coef_,
            "intercept": self.intercept_,
            "gamma": self.gamma_,
            "mean": self.mean_,
            "std": self.std_,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.feature_extractor = extractor_from_state(state["extractor"])
        self.embedder_ = self._embedder()
        self.support_vectors_ = state["support_vectors"]
        self.dual_coef_ = state["dual_coef"]
        self.intercept_ = float(state["intercept"])
        self.gamma_ = float(state["gamma"])
        self.mean_ = state["mean"]
        self.std_ = state["std"]
