"""The context aggregation network: defect masks and classes from the masks' maxima.

>>> DEFAULT_MODEL.name
'mt_segmenter.pt'
"""

from __future__ import annotations

from pathlib import Path

from detection.segmentation.estimator import DefectSegmenter

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "default_models" / "mt_segmenter.pt"
# the default segmenter's masks, each image's class from a head over it and the anomaly default
# (not the default: on tiles it did not see it does worse, docs/detection-classification.md)
DEFAULT_STACKED_MODEL = DEFAULT_MODEL.with_name("mt_segmenter_stacked.pt")


def load_segmenter(path: str | Path | None = None) -> DefectSegmenter:
    """A trained segmenter from ``path``, or the project's default magnetic tile segmenter."""
    return DefectSegmenter.load(DEFAULT_MODEL if path is None else path)


__all__ = ["DEFAULT_MODEL", "DEFAULT_STACKED_MODEL", "DefectSegmenter", "load_segmenter"]
