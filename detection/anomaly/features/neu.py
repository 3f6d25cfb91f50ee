"""Features of the project's supervised NEU defect classifier (``detection/classifier``), as a
pluggable extractor for PatchCore and the one-class SVM.

The classifier was trained on the labelled NEU *train* part (hot-rolled steel, six defect
classes), so its middle stages respond to defect-like structure; here they describe magnetic
tile patches. Which stages: 2 and 3 of 4 (strides 8 and 16), the middle layers PatchCore uses.
The classifier's own input normalisation (one mean and spread) is kept.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class NeuClassifierFeatures(nn.Module):
    """``features(x)`` of a :class:`~detection.classifier.torch_model.CompactResNet`."""

    def __init__(self, n_classes: int, widths: list[int], blocks_per_stage: int,
                 mean: float, std: float) -> None:
        super().__init__()
        from detection.classifier.torch_model import CompactResNet

        self.n_classes = n_classes
        self.widths = list(widths)
        self.blocks_per_stage = blocks_per_stage
        self.mean = float(mean)
        self.std = float(std)
        self.net = CompactResNet(n_classes, tuple(widths), blocks_per_stage)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        stages = self.net.features((x - self.mean) / self.std)
        return stages[1:3]

    @classmethod
    def from_classifier_file(cls, path: str | Path) -> NeuClassifierFeatures:
        """From a model file written by ``coilmap detect train-classifier``."""
        from detection.classifier.estimator import DefectClassifier

        clf = DefectClassifier.load(path)
        module = cls(len(clf.classes_), list(clf.widths), clf.blocks_per_stage, clf.mean_, clf.std_)
        module.net.load_state_dict(clf.net_.state_dict())
        return module.eval()
