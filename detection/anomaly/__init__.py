"""Anomaly scorers trained on defect-free images only, one sub-package per family.

- :mod:`~detection.anomaly.draem`: DRAEM (synthetic Perlin anomalies, reconstructive and
  discriminative sub-networks); its discriminative encoder is the project's learned feature
  extractor;
- :mod:`~detection.anomaly.patchcore`: memory-bank nearest neighbours over those features, at
  one scale or as a pyramid of scales (the default model's decision: a pyramid over both
  encoders of a DRAEM pair, whose own maps sharpen the outlines);
- :mod:`~detection.anomaly.ssim_ae`: the SSIM autoencoder with a sliding window;
- :mod:`~detection.anomaly.ocsvm`: a one-class SVM over the same features (baseline).

Every scorer follows the scikit-learn contract (``fit`` / ``score_samples`` /
``decision_function`` / ``predict``) and adds ``score_map(image01) -> (H, W)`` map; post-
processing lives in :mod:`~detection.anomaly.blobs` and :mod:`~detection.anomaly.heatmap`.

``load_scorer()`` gives the project's default model (``detection/default_models``).
"""

from __future__ import annotations

from pathlib import Path

from detection.anomaly.base import AnomalyScorer

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "default_models" / "mt_anomaly.pt"


def load_scorer(path: str | Path | None = None) -> AnomalyScorer:
    """The scorer saved at ``path``, or the default model kept in the repository."""
    from detection.anomaly.artefact import load

    return load(DEFAULT_MODEL if path is None else path)


__all__ = ["DEFAULT_MODEL", "AnomalyScorer", "load_scorer"]
