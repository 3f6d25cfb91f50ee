"""The context aggregation network: defect masks and classes from the masks' maxima.

>>> DEFAULT_MODEL.name
'mt_segmenter.pt'
"""

from __future__ import annotations

from pathlib import Path

from detection.segmentation.estimator import DefectSegmenter

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "default_models" / "mt_segmenter.pt"


def load_segmenter(path: str | Path | None = None) -> DefectSegmenter:
    """A trained segmenter from ``path``, or the project's default magnetic tile segmenter."""
    return DefectSegmenter.load(DEFAULT_MODEL if path is None else path)


__all__ = ["DEFAULT_MODEL", "DefectSegmenter", "load_segmenter"]
