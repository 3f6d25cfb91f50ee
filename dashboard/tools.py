"""The fusion area's data tools as the dashboard finds them: the training-set audit report
(JSON) and the similar-image search (``fusion.search``), each optional."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import pandas as pd

SEARCH_MODULE = "fusion.search"
# Names the search function may have in ``fusion.search``; it takes an image path and ``k``.
SEARCH_FUNCTIONS = ("similar_images", "search_similar", "similar", "search")


def similar_search() -> Callable[..., Any] | None:
    """The similar-image search function, or None while the fusion area has none."""
    try:
        module = importlib.import_module(SEARCH_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name in (SEARCH_MODULE, SEARCH_MODULE.split(".")[0]):
            return None
        raise
    for name in SEARCH_FUNCTIONS:
        fn = getattr(module, name, None)
        if callable(fn):
            return fn
    return None


def as_table(result: Any) -> pd.DataFrame:
    """A search result (data frame, list of dicts or of (ref, distance) pairs) as a table."""
    if isinstance(result, pd.DataFrame):
        return result
    rows = list(result)
    if rows and not isinstance(rows[0], dict):
        return pd.DataFrame(rows, columns=["image_ref", "distance"][: len(rows[0])])
    return pd.DataFrame(rows)


def report_sections(report: dict) -> tuple[dict[str, Any], dict[str, pd.DataFrame], dict[str, Any]]:
    """Split an audit report into headline numbers, tables (lists of records) and the rest.

    >>> s, t, o = report_sections({"n_images": 1800, "duplicates": [{"a": "x.png", "b": "y.png"}],
    ...                            "per_class": {"crazing": 300}})
    >>> s, list(t), o
    ({'n_images': 1800}, ['duplicates'], {'per_class': {'crazing': 300}})
    """
    scalars: dict[str, Any] = {}
    tables: dict[str, pd.DataFrame] = {}
    other: dict[str, Any] = {}
    for key, value in report.items():
        if isinstance(value, str | int | float | bool) or value is None:
            scalars[key] = value
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            tables[key] = pd.DataFrame(value)
        else:
            other[key] = value
    return scalars, tables, other
