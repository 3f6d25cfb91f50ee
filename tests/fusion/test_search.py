"""Similar-image search: filters that hold even when selective, the approximate index against
the exact one, files, and a tiny classifier trained here as the embedder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coilmap.errors import InputError
from fusion.search import Filters, SimilarityIndex, normalise, precision_at_k


def _data(n: int, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, dim))
    cluster = rng.integers(0, 12, n)
    x = (centres[cluster] + 0.5 * rng.normal(size=(n, dim))).astype(np.float32)
    meta = pd.DataFrame(
        {
            "id": [f"obs{i}" for i in range(n)],
            "label": np.array(["crazing", "inclusion", "patches"])[cluster % 3],
            "grade": np.array(["S235JR", "DC04", "S355MC", "DX51D"])[rng.integers(0, 4, n)],
            "line": np.array(["PL", "CAL"])[rng.integers(0, 2, n)],
            "station": np.array(["PL-T", "PL-B", "CAL-T"])[rng.integers(0, 3, n)],
            "time": pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(rng.uniform(0, 100, n), unit="D"),
        }
    )
    return x, meta


def _brute(x: np.ndarray, q: np.ndarray, mask: np.ndarray, k: int) -> list[int]:
    rows = np.flatnonzero(mask)
    sims = normalise(x)[rows] @ normalise(q[None])[0]
    return rows[np.argsort(-sims, kind="stable")[:k]].tolist()


FILTERS = [
    Filters(classes=("patches",)),
    Filters(classes=("crazing", "inclusion"), grades=("DC04",)),
    Filters(
        stations=("CAL-T",),
        since=pd.Timestamp("2026-02-01", tz="UTC"),
        until=pd.Timestamp("2026-02-15", tz="UTC"),
    ),
    Filters(
        classes=("patches",), grades=("DX51D",), lines=("PL",), since=pd.Timestamp("2026-03-20", tz="UTC")
    ),
]


@pytest.mark.parametrize("brute_max", [0, 10_000])
def test_exact_index_with_filters_equals_brute_force(brute_max: int) -> None:
    x, meta = _data(1500)
    index = SimilarityIndex(brute_max=brute_max).fit(x, meta)
    for f in FILTERS:
        mask = f.mask(index.meta_)
        assert 0 < mask.sum() < len(x)
        for qi in (3, 77):
            got = index.search(x[qi], k=10, filters=f)
            assert got["row"].tolist() == _brute(x, x[qi], mask, 10)
            assert mask[got["row"]].all()


def test_approximate_index_keeps_filters_and_finds_most_true_neighbours() -> None:
    x, meta = _data(6000, seed=1)
    index = SimilarityIndex(exact_max=1000, nlist=32, nprobe=4, brute_max=200, train_size=2000).fit(x, meta)
    assert index.kind_ == "ivf"
    recalls = []
    for f in [Filters(), *FILTERS]:
        mask = f.mask(index.meta_)
        for qi in range(0, 200, 20):
            got = index.search(x[qi], k=10, filters=f)
            # A selective filter still returns k results when k exist.
            assert len(got) == min(10, int(mask.sum()))
            assert mask[got["row"]].all()
            recalls.append(len(set(got["row"]) & set(_brute(x, x[qi], mask, 10))) / min(10, int(mask.sum())))
    assert np.mean(recalls) > 0.9


def test_query_excludes_itself_and_precision_counts_same_class() -> None:
    x, meta = _data(900, seed=2)
    index = SimilarityIndex().fit(x, meta)
    hits = index.search(x[5], k=5, exclude_rows=[[5]])
    assert 5 not in hits["row"].tolist() and len(hits) == 5
    p = precision_at_k(index, np.arange(0, 900, 30), k=10)
    # Twelve clusters, three classes: neighbours share the cluster and so the class.
    assert 0.9 < p <= 1.0
    shuffled = SimilarityIndex().fit(
        x, meta.assign(label=np.random.default_rng(0).permutation(meta["label"]))
    )
    assert precision_at_k(shuffled, np.arange(0, 900, 30), k=10) < 0.6


def test_save_and_load_give_the_same_answers(tmp_path: Path) -> None:
    x, meta = _data(3000, seed=3)
    index = SimilarityIndex(exact_max=500, nlist=16, train_size=1000).fit(x, meta)
    index.save(tmp_path / "idx", {"embedder": "test"})
    again, info = SimilarityIndex.load(tmp_path / "idx")
    assert info["embedder"] == "test" and info["kind"] == "ivf"
    a = index.search(x[:3], k=7, filters=FILTERS[1])
    b = again.search(x[:3], k=7, filters=FILTERS[1])
    pd.testing.assert_frame_equal(a, b)
    assert again.row_of("obs17") == 17
    with pytest.raises(InputError, match="not a similarity index"):
        SimilarityIndex.load(tmp_path)


def test_bad_input_is_named() -> None:
    x, meta = _data(50)
    with pytest.raises(InputError, match="unique"):
        SimilarityIndex().fit(x, meta.assign(id="same"))
    with pytest.raises(InputError, match="metadata rows"):
        SimilarityIndex().fit(x, meta.iloc[:10])
    index = SimilarityIndex().fit(x, meta)
    with pytest.raises(InputError, match="dimensions"):
        index.search(np.zeros(3), k=3)


def test_benchmark_runs_end_to_end_on_a_small_set(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.bench_search import main

    main(
        ["--n", "51000", "--dim", "8", "--clusters", "50", "--nlist", "32", "--queries", "5", "--timing-only"]
    )
    out = capsys.readouterr().out
    assert "ivf index" in out and "class + grade + month" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("no filter", "own class"))]
    assert all(0.0 <= float(r[-1]) <= 1.0 for r in rows)
