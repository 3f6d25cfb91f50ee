"""The training-set audit: concentration, split overlap and the leakage alarm."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from coilmap.errors import InputError
from fusion.audit import audit, render_html, render_text
from fusion.split import grouped_split

from .helpers import coil_table

FAST = {"n_permutations": 19, "alpha": 0.05}


def test_random_split_of_coil_confounded_data_is_contaminated_and_grouped_split_is_not() -> None:
    table = coil_table(n_coils=48, per_coil=6, seed=1)
    rng = np.random.default_rng(0)
    table["split"] = np.where(rng.random(len(table)) < 0.25, "test", "train")
    leaky = audit(table, source="random", **FAST)
    assert leaky["leakage"]["verdict"] == "contaminated"
    assert leaky["leakage"]["train_to_test"]["balanced_accuracy"] > 0.6
    assert leaky["split"]["coil_overlap"]["train_test"]["n_coils"] > 20
    assert any("LEAKAGE CONTAMINATED" in f for f in leaky["findings"])

    table["split"] = grouped_split(table["label"], table["coil"], test_fraction=0.25, seed=0)
    clean = audit(table, source="grouped", **FAST)
    assert clean["split"]["coil_overlap"]["train_test"]["n_coils"] == 0
    assert clean["leakage"]["verdict"] == "no alarm"
    # The data set itself stays confounded: random folds would leak.
    assert clean["leakage"]["random_folds"]["verdict"] == "contaminated"
    json.dumps(clean)  # the dashboard reads it as JSON


def test_concentration_on_one_coil_is_flagged() -> None:
    table = coil_table(n_coils=30, per_coil=4, seed=2)
    extra = table[table.label == "patches"].iloc[:1]
    table = pd.concat([table] + [extra.assign(path=f"x{i}.png") for i in range(40)], ignore_index=True)
    rep = audit(table, n_permutations=0 + 9, alpha=0.1)
    prof = {p["class"]: p for p in rep["per_class"]}
    assert prof["patches"]["top_coil_share"] > 0.5
    assert any("come from one coil" in f for f in prof["patches"]["flags"])
    assert prof["patches"]["effective_coils"] < prof["crazing"]["effective_coils"]
    text = render_text(rep)
    assert "patches" in text and "leakage alarm" in text
    assert "<table>" in render_html(rep)


def test_without_metadata_the_audit_says_so_and_still_counts() -> None:
    table = pd.DataFrame(
        {
            "path": [f"{c}_{i}.jpg" for c in "ab" for i in range(10)],
            "label": ["a"] * 10 + ["b"] * 10,
            "split": ["train", "test"] * 10,
            "content_hash": ["same"] + [f"h{i}" for i in range(19)],
        }
    )
    table.loc[1, "content_hash"] = "same"  # an identical file in train and test
    rep = audit(table, n_permutations=9)
    assert rep["metadata"]["available"] is False
    assert rep["leakage"]["verdict"] == "not available"
    assert rep["class_distribution"]["by_split"]["test"] == {"a": 5, "b": 5}
    assert rep["split"]["identical_files_across_parts"] == [["a_0.jpg", "a_1.jpg"]]


def test_bad_tables_name_the_row_and_field() -> None:
    with pytest.raises(InputError, match="label"):
        audit(pd.DataFrame({"path": ["a.png"]}))
    bad = pd.DataFrame({"path": ["a.png", "b.png"], "label": ["x", "y"], "time": ["2026-01-01", "yesterday"]})
    with pytest.raises(InputError, match=r"line 3: field time"):
        audit(bad)
