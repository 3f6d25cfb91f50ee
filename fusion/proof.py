"""Proof of the fusion gain: coil-grouped cross-validation of image-only against fused.

Never the same coil, nor pieces of the same hot coil, in train and test: ``groups`` are the
root hot coils of each observation's piece, and folds are :class:`GroupKFold` over them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, recall_score

from fusion.evidence import PSEUDO
from fusion.fused import FusedClassifier, decide
from fusion.pseudo_threshold import out_of_fold_proba, pseudo_threshold_for


@dataclass
class GainReport:
    """Per station: macro-F1 and per-class recall of each model, pseudo-defect rejection."""

    table: pd.DataFrame  # one row per (station, model)
    predictions: pd.DataFrame  # per observation: station, truth, image_only, fused
    pseudo_threshold: float | None = None  # the fused row's, when chosen (``real_loss``)

    def text(self) -> str:
        text = self.table.to_string(index=False, float_format=lambda v: f"{v:.3f}")
        if self.pseudo_threshold is None:
            return text
        return f"{text}\nfused: pseudo only where its probability >= {self.pseudo_threshold:.4f}"


def cross_validated(
    estimator: FusedClassifier, X: np.ndarray, y: np.ndarray, groups: np.ndarray, *, n_splits: int = 5
) -> np.ndarray:
    """Out-of-fold predictions with whole hot coils held out together (the estimator's own
    pseudo threshold applies)."""
    proba, classes = out_of_fold_proba(estimator, X, y, groups, n_splits=n_splits)
    return np.asarray(classes, dtype=object)[decide(proba, classes, estimator.pseudo_threshold)]


def gain_report(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    stations: np.ndarray,
    *,
    own_columns: Sequence[int],
    classes: Sequence[str],
    raw_image: np.ndarray | None = None,
    n_splits: int = 5,
    real_loss: float | None = None,
) -> GainReport:
    """Fused (all features) against image-only (the ``own_*`` columns alone, same estimator,
    same folds); ``raw_image`` adds the image classifier's own argmax as a third row. With
    ``real_loss``, the fused model's pseudo threshold is chosen on its out-of-fold
    probabilities (:func:`pseudo_threshold_for`) and its row uses it; the same probabilities
    choose and show it, so that row is a little optimistic."""
    proba, labels_seen = out_of_fold_proba(FusedClassifier(), X, y, groups, n_splits=n_splits)
    threshold = None
    if real_loss is not None and PSEUDO in labels_seen:
        threshold = pseudo_threshold_for(proba[:, labels_seen.index(PSEUDO)], y, real_loss=real_loss)
    fused = np.asarray(labels_seen, dtype=object)[decide(proba, labels_seen, threshold)]
    image = cross_validated(FusedClassifier(columns=list(own_columns)), X, y, groups, n_splits=n_splits)
    preds = {"image_only": image, "fused": fused}
    if raw_image is not None:
        preds = {"image_classifier": raw_image, **preds}
    rows = []
    labels = [c for c in classes if c in set(y)]
    for station in sorted(set(stations)):
        sel = stations == station
        for name, p in preds.items():
            row = {"station": station, "model": name, "n": int(sel.sum())}
            row["macro_f1"] = f1_score(y[sel], p[sel], labels=labels, average="macro", zero_division=0)
            rec = recall_score(y[sel], p[sel], labels=labels, average=None, zero_division=0)
            for c, r in zip(labels, rec, strict=True):
                row[f"recall_{c}"] = r if (y[sel] == c).any() else np.nan
            pseudo = y[sel] == PSEUDO
            row["pseudo_rejected"] = float((p[sel][pseudo] == PSEUDO).mean()) if pseudo.any() else np.nan
            rows.append(row)
    table = pd.DataFrame(rows)
    predictions = pd.DataFrame({"station": stations, "truth": y, **preds})
    return GainReport(table, predictions, threshold)
