"""Similar-image search: "show me the defects that look like this one", with filters.

The index holds one unit vector per defect image (cosine similarity = inner product) in faiss,
and beside it a metadata table (``id``, ``path``, ``label``, ``coil``, ``grade``, ``line``,
``station``, ``time``) for the filters. Up to ``exact_max`` vectors it is exact
(``IndexFlatIP``); beyond, an inverted file (``IndexIVFFlat``, ``4 * sqrt(n)`` lists up to
1,024, ``nprobe`` of them searched), whose recall against the exact index the benchmark
reports.

Filters are applied inside the search, never after it, so a selective filter still returns
``k`` results when ``k`` exist: a selection of at most ``brute_max`` rows is scored exactly
(their vectors taken from the index); a larger one goes through faiss with an
``IDSelectorBitmap``, scanning every list when the filter keeps at most 1/16 of the index
(exact among the selected) and ``2 * nprobe * n / selected`` lists otherwise, probing more when
that fell short of ``k``.

>>> rng = np.random.default_rng(0)
>>> vecs = rng.normal(size=(200, 8)).astype(np.float32)
>>> meta = pd.DataFrame({"id": [f"i{j}" for j in range(200)], "label": ["a", "b"] * 100})
>>> index = SimilarityIndex().fit(vecs, meta)
>>> hits = index.search(vecs[:1], k=3, filters=Filters(classes=("b",)))
>>> hits["label"].tolist(), len(index)
(['b', 'b', 'b'], 200)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd

from coilmap.errors import InputError

META_COLUMNS = ("id", "path", "label", "coil", "grade", "line", "station", "time")
CATEGORIES = ("label", "coil", "grade", "line", "station")
INDEX_FILE, META_FILE, INFO_FILE = "index.faiss", "meta.parquet", "index.json"
SCHEMA = "coilmap-similarity-index/1"
# A filter keeping at most 1/16 of the index scans every inverted list (exact); one keeping
# more probes ``2 * nprobe * n / selected`` lists (approximate, much faster for a class filter).
FULL_SCAN_SHARE = 16


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32, C order); zero rows stay zero."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise InputError(f"vectors must be a 2-D array, got shape {v.shape}")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray(v / np.maximum(norms, 1e-12), dtype=np.float32)


@dataclass(frozen=True)
class Filters:
    """Which indexed images a query may return (empty = any): classes, grades, lines and
    stations (any of the given values), and a production period ``[since, until)``."""

    classes: tuple[str, ...] = ()
    grades: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()
    stations: tuple[str, ...] = ()
    since: pd.Timestamp | None = None
    until: pd.Timestamp | None = None

    @property
    def empty(self) -> bool:
        return not (self.classes or self.grades or self.lines or self.stations) and (
            self.since is None and self.until is None
        )

    def mask(self, meta: pd.DataFrame) -> np.ndarray:
        """Boolean row mask over an index's metadata table."""
        return self.mask_columns(_columns(meta))

    def mask_columns(self, cols: dict[str, Any]) -> np.ndarray:
        """The mask from pre-extracted columns (category codes and lookup, time in ns): a few
        vectorised comparisons, about a millisecond per million rows."""
        keep: np.ndarray | None = None

        def both(m: np.ndarray) -> None:
            nonlocal keep
            keep = m if keep is None else keep & m

        for col, wanted in (
            ("label", self.classes),
            ("grade", self.grades),
            ("line", self.lines),
            ("station", self.stations),
        ):
            if wanted:
                codes, lookup = cols[col]
                want = [lookup[w] for w in wanted if w in lookup]
                if len(want) == 1:
                    both(codes == want[0])
                else:
                    both(np.isin(codes, want))
        t_ns = cols["time"]
        if self.since is not None:
            both(t_ns >= pd.Timestamp(self.since).value)
        if self.until is not None:
            both((t_ns < pd.Timestamp(self.until).value) & (t_ns != _NAT))
        return np.ones(cols["n"], dtype=bool) if keep is None else keep


_NAT = np.iinfo(np.int64).min


def _columns(meta: pd.DataFrame) -> dict[str, Any]:
    """Category codes with a value -> code lookup, and the time in ns (NaT = int64 min)."""
    cols: dict[str, Any] = {"n": len(meta)}
    for col in ("label", "grade", "line", "station"):
        cat = meta[col].cat
        cols[col] = (cat.codes.to_numpy(), {v: i for i, v in enumerate(cat.categories)})
    cols["time"] = meta["time"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    return cols


def _as_meta(meta: pd.DataFrame, n: int) -> pd.DataFrame:
    if len(meta) != n:
        raise InputError(f"{n} vectors but {len(meta)} metadata rows")
    if "id" not in meta:
        raise InputError("the metadata needs an 'id' column", field="id")
    out = pd.DataFrame(index=pd.RangeIndex(n))
    for col in META_COLUMNS:
        values = meta[col].to_numpy() if col in meta else np.full(n, None, dtype=object)
        if col == "time":
            out[col] = pd.to_datetime(pd.Series(values), utc=True, errors="coerce")
        elif col in CATEGORIES:
            out[col] = pd.Series(values, dtype="string").astype("category")
        else:
            out[col] = pd.Series(values, dtype="string")
    if out["id"].isna().any() or out["id"].duplicated().any():
        dup = out["id"][out["id"].duplicated()].iloc[0] if out["id"].duplicated().any() else None
        raise InputError(f"ids must be present and unique (duplicate: {dup!r})", field="id")
    return out


class SimilarityIndex:
    """Nearest neighbours by cosine similarity, with metadata filters.

    Parameters (stored as given): ``exact_max`` (largest exact index), ``nlist`` (inverted
    lists; default ``4 * sqrt(n)`` up to 1,024), ``nprobe`` (lists searched per query),
    ``brute_max`` (largest filtered selection scored exactly), ``train_size`` (vectors the
    list centroids are trained on), ``seed``. Learned: ``index_``, ``meta_``, ``kind_``.
    """

    def __init__(
        self,
        exact_max: int = 50_000,
        nlist: int | None = None,
        nprobe: int = 16,
        brute_max: int = 4096,
        train_size: int = 65_536,
        seed: int = 0,
    ) -> None:
        self.exact_max = exact_max
        self.nlist = nlist
        self.nprobe = nprobe
        self.brute_max = brute_max
        self.train_size = train_size
        self.seed = seed

    # -- building ---------------------------------------------------------------------------
    def fit(self, vectors: np.ndarray, meta: pd.DataFrame) -> SimilarityIndex:
        x = normalise(vectors)
        n, d = x.shape
        if n == 0:
            raise InputError("nothing to index")
        self.meta_ = _as_meta(meta, n)
        if n <= self.exact_max:
            index: faiss.Index = faiss.IndexFlatIP(d)
            self.kind_ = "flat"
        else:
            nlist = self.nlist or min(1024, int(4 * math.sqrt(n)))
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(self.seed)
            sample = x[rng.choice(n, size=min(n, max(self.train_size, 40 * nlist)), replace=False)]
            index.cp.seed = self.seed
            index.train(sample)
            self.kind_ = "ivf"
        index.add(x)
        self._prepare(index)
        return self

    def _prepare(self, index: faiss.Index) -> None:
        if isinstance(index, faiss.IndexIVF):
            index.make_direct_map()
            index.nprobe = self.nprobe
        self.index_ = index
        self._row_of_id = {v: i for i, v in enumerate(self.meta_["id"].tolist())}
        self._cols = _columns(self.meta_)
        self._arrays = {
            col: self.meta_[col].to_numpy() if col == "time" else self.meta_[col].astype(object).to_numpy()
            for col in META_COLUMNS
        }

    def mask(self, filters: Filters) -> np.ndarray:
        return filters.mask_columns(self._cols)

    def __len__(self) -> int:
        return int(self.index_.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index_.d)

    # -- lookup -----------------------------------------------------------------------------
    def row_of(self, item_id: str) -> int | None:
        return self._row_of_id.get(str(item_id))

    def vector(self, row: int) -> np.ndarray:
        return self.index_.reconstruct(int(row))

    # -- search -----------------------------------------------------------------------------
    def search(
        self,
        queries: np.ndarray,
        k: int = 20,
        filters: Filters | None = None,
        exclude_rows: list[list[int]] | None = None,
    ) -> pd.DataFrame:
        """The ``k`` most similar indexed images of each query row that pass ``filters``
        (``exclude_rows[i]``: rows query ``i`` must not return, e.g. itself). One row per hit:
        ``query``, ``rank`` (1 = most similar), ``score`` (cosine), then the metadata."""
        q = normalise(np.atleast_2d(queries))
        if q.shape[1] != self.dim:
            raise InputError(f"query vectors have {q.shape[1]} dimensions, the index {self.dim}")
        has_filter = filters is not None and not filters.empty
        base = filters.mask_columns(self._cols) if has_filter else np.ones(len(self), dtype=bool)  # type: ignore[union-attr]
        parts: list[tuple[int, np.ndarray, np.ndarray]] = []
        for i in range(len(q)):
            mask = base
            excl = exclude_rows[i] if exclude_rows else []
            if excl:
                mask = mask.copy()
                mask[excl] = False
            scores, rows = self._search_one(q[i : i + 1], k, mask, filtered=has_filter or bool(excl))
            parts.append((i, scores, rows))
        return self._hits(parts)

    def _search_one(
        self, q: np.ndarray, k: int, mask: np.ndarray, *, filtered: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        if not filtered:
            scores, rows = self.index_.search(q, k)
            return _valid(scores[0], rows[0])
        n_sel = int(mask.sum())
        if n_sel == 0:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        if n_sel <= self.brute_max:
            # Few candidates: score every one exactly.
            rows = np.flatnonzero(mask)
            vecs = self.index_.reconstruct_batch(rows.astype(np.int64))
            sims = vecs @ q[0]
            top = np.argsort(-sims, kind="stable")[:k]
            return sims[top], rows[top]
        # The bitmap must outlive the search: faiss keeps only a pointer to it.
        bits = np.packbits(mask, bitorder="little")
        sel = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
        if isinstance(self.index_, faiss.IndexIVF):
            nlist = self.index_.nlist
            if n_sel * FULL_SCAN_SHARE <= len(mask):
                # A selective filter: the selected vectors nearest the query may sit in any
                # list, so scan them all. faiss checks the bitmap before it computes a
                # distance, so this costs a pass over the ids plus one product per selected
                # vector, and the answer is exact.
                nprobe = nlist
            else:
                # A broad filter: probe more lists the fewer vectors it keeps (the cost grows
                # with the selected vectors in the probed lists, not with the lists).
                nprobe = min(nlist, math.ceil(2 * self.nprobe * len(mask) / n_sel))
            while True:
                params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
                scores, rows = self.index_.search(q, k, params=params)
                if (rows[0] >= 0).sum() >= min(k, n_sel) or nprobe >= nlist:
                    break
                nprobe = min(nlist, nprobe * 4)
        else:
            scores, rows = self.index_.search(q, k, params=faiss.SearchParameters(sel=sel))
        return _valid(scores[0], rows[0])

    def _hits(self, parts: list[tuple[int, np.ndarray, np.ndarray]]) -> pd.DataFrame:
        # Plain numpy gathers and one DataFrame: per-query pandas indexing would cost more
        # than the search itself.
        rows = np.concatenate([r for _, _, r in parts]) if parts else np.zeros(0, dtype=np.int64)
        out: dict[str, Any] = {
            "query": np.concatenate([np.full(len(r), i) for i, _, r in parts]) if parts else rows,
            "rank": np.concatenate([np.arange(1, len(r) + 1) for _, _, r in parts]) if parts else rows,
            "score": np.round(np.concatenate([s for _, s, _ in parts]).astype(np.float64), 5)
            if parts
            else np.zeros(0),
        }
        for col in META_COLUMNS:
            out[col] = self._arrays[col][rows]
        out["row"] = rows
        return pd.DataFrame(out)

    # -- files ------------------------------------------------------------------------------
    def save(self, folder: str | Path, info: dict[str, Any] | None = None) -> Path:
        """``index.faiss``, ``meta.parquet`` and ``index.json`` (what made it) in ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index_, str(folder / INDEX_FILE))
        self.meta_.to_parquet(folder / META_FILE, index=False)
        doc = {
            "schema": SCHEMA,
            "kind": self.kind_,
            "n": len(self),
            "dim": self.dim,
            "params": {
                "exact_max": self.exact_max,
                "nlist": self.nlist,
                "nprobe": self.nprobe,
                "brute_max": self.brute_max,
                "train_size": self.train_size,
                "seed": self.seed,
            },
            **(info or {}),
        }
        (folder / INFO_FILE).write_text(json.dumps(doc, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> tuple[SimilarityIndex, dict[str, Any]]:
        """An index saved by :meth:`save` and its ``index.json``; clear errors otherwise."""
        folder = Path(folder)
        info_path = folder / INFO_FILE
        if not info_path.is_file():
            raise InputError(f"not a similarity index folder (no {INFO_FILE})", source=str(folder))
        try:
            info = json.loads(info_path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"unreadable ({exc})", source=str(info_path)) from None
        if info.get("schema") != SCHEMA:
            raise InputError(f"schema {info.get('schema')!r}, expected {SCHEMA}", source=str(info_path))
        self = cls(**info["params"])
        self.kind_ = info["kind"]
        meta = pd.read_parquet(folder / META_FILE)
        self.meta_ = _as_meta(meta, len(meta))
        index = faiss.read_index(str(folder / INDEX_FILE))
        if index.ntotal != len(meta):
            raise InputError(
                f"the index holds {index.ntotal} vectors but {len(meta)} metadata rows", source=str(folder)
            )
        self._prepare(index)
        return self, info


def _valid(scores: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = rows >= 0
    return scores[ok], rows[ok]


def precision_at_k(index: SimilarityIndex, query_rows: np.ndarray, k: int = 10) -> float:
    """Mean share of same-class images among the ``k`` nearest neighbours of each indexed
    query row (the query itself excluded)."""
    labels = index.meta_["label"].to_numpy()
    hits = index.search(
        np.stack([index.vector(r) for r in query_rows]), k=k, exclude_rows=[[int(r)] for r in query_rows]
    )
    same = labels[hits["row"].to_numpy()] == labels[np.asarray(query_rows)[hits["query"].to_numpy()]]
    return float(same.sum() / (k * len(query_rows)))
