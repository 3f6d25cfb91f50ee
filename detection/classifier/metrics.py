"""Classification figures: accuracy, confusion matrix, per-class recall, the misclassified.

>>> m = classification_metrics([0, 1, 1, 2], [0, 1, 2, 2], ["a", "b", "c"])
>>> m["accuracy"], m["errors"], m["confusion"]
(0.75, 1, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, error count, confusion matrix (rows true, columns predicted), per-class recall."""
    t = np.asarray(y_true, dtype=int)
    p = np.asarray(y_pred, dtype=int)
    n = len(classes)
    conf = np.zeros((n, n), dtype=int)
    np.add.at(conf, (t, p), 1)
    support = conf.sum(1)
    recall = {c: (float(conf[i, i] / support[i]) if support[i] else None) for i, c in enumerate(classes)}
    return {
        "n": int(len(t)),
        "accuracy": float((t == p).mean()) if len(t) else float("nan"),
        "errors": int((t != p).sum()),
        "classes": list(classes),
        "confusion": conf.tolist(),
        "recall": recall,
    }


def no_better_than_majority(part: str, metrics: dict[str, Any]) -> str | None:
    """A warning when a part's accuracy is no better than always answering its most common
    class (a classifier that has learned nothing there), else ``None``.

    Why: on the magnetic tiles (defects of a few pixels in images mostly of the defect-free
    class) a classifier can train to the end and call almost every image wrong; its figures
    alone do not say that answering "Free" every time would have scored 68 %.

    >>> m = classification_metrics([0, 0, 0, 1], [1, 1, 0, 1], ["free", "crack"])
    >>> print(no_better_than_majority("val", m)[:85])
    val accuracy 50.0 % is no better than always answering free (75.0 % of its 4 images):
    >>> learned = classification_metrics([0, 0, 1], [0, 0, 1], ["free", "crack"])
    >>> no_better_than_majority("val", learned) is None
    True
    """
    support = np.asarray(metrics["confusion"]).sum(1)
    if metrics["n"] == 0 or len(support) < 2:
        return None
    majority = int(np.argmax(support))
    share = float(support[majority] / metrics["n"])
    if metrics["accuracy"] > share:
        return None
    return (f"{part} accuracy {100 * metrics['accuracy']:.1f} % is no better than always answering "
            f"{metrics['classes'][majority]} ({100 * share:.1f} % of its {metrics['n']} images): "
            "the classifier has not learned these classes")


def unlearned_warnings(metrics_by_part: dict[str, dict[str, Any]]) -> list[str]:
    """:func:`no_better_than_majority` of each part, and where any fires, what to try instead."""
    warnings = [w for part, m in metrics_by_part.items() if (w := no_better_than_majority(part, m))]
    if warnings:  # small defects in large images: a segmenter sees them at full resolution
        warnings.append("for defects of a few pixels in large images, try train-segmenter")
    return warnings


def format_confusion(conf: Sequence[Sequence[int]], classes: Sequence[str]) -> str:
    """A plain-text confusion matrix (rows true, columns predicted), for the console and docs.

    >>> print(format_confusion([[2, 0], [1, 3]], ["ab", "cd"]))
    true \\ pred  ab  cd
    ab            2   0
    cd            1   3
    """
    w = max(len("true \\ pred"), *(len(c) for c in classes))
    cw = max(3, *(len(c) for c in classes))
    lines = ["true \\ pred".ljust(w) + "".join(f" {c:>{cw}}" for c in classes)]
    for c, row in zip(classes, conf, strict=True):
        lines.append(c.ljust(w) + "".join(f" {v:>{cw}}" for v in row))
    return "\n".join(lines)
