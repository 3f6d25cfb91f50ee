"""The examples in the dashboard's docstrings run (the package is not among pytest's
doctest paths: its page scripts execute when imported)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = (
    "dashboard.images",
    "dashboard.coil_view",
    "dashboard.ui",
    "dashboard.tools",
    "dashboard.figures.palette",
    "dashboard.figures.coil_map",
    "dashboard.figures.genealogy",
    "dashboard.figures.history",
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
