"""The supervised defect classifier (a compact residual CNN trained from scratch).

>>> DEFAULT_MODEL.name
'neu_classifier.pt'
"""

from __future__ import annotations

from pathlib import Path

from detection.classifier.estimator import DefectClassifier

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "default_models" / "neu_classifier.pt"


def load_classifier(path: str | Path | None = None) -> DefectClassifier:
    """A trained classifier from ``path``, or the project's default NEU classifier."""
    return DefectClassifier.load(DEFAULT_MODEL if path is None else path)


__all__ = ["DEFAULT_MODEL", "DefectClassifier", "load_classifier"]
