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
