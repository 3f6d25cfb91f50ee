"""The context aggregation network: defect masks and classes from the masks' maxima.

The default model (``DEFAULT_MODEL``) is the default networks (``DEFAULT_NETWORKS``: two trained
networks averaged over each image's mirror views) read through the default anomaly scorer
(:mod:`detection.segmentation.gated`, since 2026-12-07): the networks draw the masks, and each
class's image score is the maximum of its probability times the anomaly map.

>>> DEFAULT_MODEL.name, DEFAULT_NETWORKS.name
('mt_segmenter_gated.pt', 'mt_segmenter.pt')
"""

from __future__ import annotations

from pathlib import Path

from detection.segmentation.estimator import DefectSegmenter

_MODELS = Path(__file__).resolve().parent.parent / "default_models"
DEFAULT_MODEL = _MODELS / "mt_segmenter_gated.pt"
DEFAULT_NETWORKS = _MODELS / "mt_segmenter.pt"


def load_segmenter(path: str | Path | None = None) -> DefectSegmenter:
    """A trained segmenter from ``path``, or the project's default magnetic tile segmenter."""
    return DefectSegmenter.load(DEFAULT_MODEL if path is None else path)


__all__ = ["DEFAULT_MODEL", "DEFAULT_NETWORKS", "DefectSegmenter", "load_segmenter"]
