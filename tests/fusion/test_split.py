"""Coil-grouped, class-stratified splits."""

from __future__ import annotations

import numpy as np
import pytest

from coilmap.errors import InputError
from fusion.split import grouped_split

from .helpers import CLASSES, coil_table


def test_no_coil_in_two_parts_and_every_class_in_every_part() -> None:
    table = coil_table(n_coils=60)
    parts = grouped_split(table["label"], table["coil"], test_fraction=0.2, val_fraction=0.1, seed=3)
    table["split"] = parts
    assert (table.groupby("coil")["split"].nunique() == 1).all()
    for p in ("train", "val", "test"):
        assert set(table.loc[table.split == p, "label"]) == set(CLASSES)
    share = table["split"].value_counts(normalize=True)
    assert share["test"] == pytest.approx(0.2, abs=0.06)
    assert share["val"] == pytest.approx(0.1, abs=0.06)


def test_same_seed_same_split_other_seed_other_split() -> None:
    table = coil_table(n_coils=40)
    a = grouped_split(table["label"], table["coil"], seed=1)
    b = grouped_split(table["label"], table["coil"], seed=1)
    c = grouped_split(table["label"], table["coil"], seed=2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_too_few_coils_and_bad_fractions_are_clear_errors() -> None:
    with pytest.raises(InputError, match="coil groups"):
        grouped_split(["a", "b", "a"], ["c1", "c1", "c2"], test_fraction=0.2)
    with pytest.raises(InputError, match="test_fraction"):
        grouped_split(["a"], ["c"], test_fraction=1.5)
