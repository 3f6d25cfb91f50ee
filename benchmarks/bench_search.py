"""Similar-image search: a million embeddings, query latency with and without filters, recall
of the approximate index, and retrieval quality on the NEU images.

``coilmap bench search [--n 1000000] [--dim 192] [--queries 200] [--quality-only]``

Timing uses synthetic clustered unit vectors (the dimension of the classifier's penultimate
layer) with made-up metadata; quality uses the real NEU images: every ``train``, ``val`` and
``test`` image is indexed (never ``render``), each ``test`` image queries the index with itself
excluded, and precision@10 is the share of same-class neighbours.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

GRADES = ("S235JR", "S355MC", "DC01", "DC04", "DX51D", "HC340LA", "S420MC", "DD11")
LINES = ("HSM", "PL", "TCM", "CAL", "SPM")


def synthetic(n: int, dim: int, n_clusters: int, seed: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Clustered vectors (a defect kind per cluster) and metadata spread over a year."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim)).astype(np.float32)
    cluster = rng.integers(0, n_clusters, n)
    x = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for s in range(0, n, step):
        e = min(n, s + step)
        x[s:e] = centres[cluster[s:e]] + 0.8 * rng.normal(size=(e - s, dim)).astype(np.float32)
    t0 = pd.Timestamp("2026-01-01", tz="UTC").value
    meta = pd.DataFrame(
        {
            "id": np.arange(n).astype(str),
            "label": np.array(
                ["crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches"]
            )[cluster % 6],
            "coil": (rng.integers(0, 20_000, n)).astype(str),
            "grade": np.array(GRADES)[rng.integers(0, len(GRADES), n)],
            "line": np.array(LINES)[rng.integers(0, len(LINES), n)],
            "time": pd.to_datetime(t0 + rng.integers(0, 365 * 86400, n) * 1_000_000_000, utc=True),
        }
    )
    meta["station"] = meta["line"].astype(str) + np.where(rng.random(n) < 0.5, "-T", "-B")
    return x, meta


def _run(index, queries: np.ndarray, k: int, filters: list) -> tuple[np.ndarray, list[set[int]]]:  # type: ignore[no-untyped-def]
    """Latency (ms) of each single-vector query and the rows it returned."""
    lat = np.empty(len(queries))
    rows = []
    for i in range(len(queries)):
        t = time.perf_counter()
        hits = index.search(queries[i : i + 1], k=k, filters=filters[i])
        lat[i] = (time.perf_counter() - t) * 1000.0
        rows.append(set(hits["row"].tolist()))
    return lat, rows


def _exact(index, x_unit: np.ndarray, queries: np.ndarray, k: int, filters: list) -> list[set[int]]:  # type: ignore[no-untyped-def]
    """True top-k of each query among the rows its filter selects: one matrix product per
    distinct filter (never a copy of the whole matrix per query)."""
    out: list[set[int]] = [set() for _ in range(len(queries))]
    for f in dict.fromkeys(filters):
        who = [i for i, g in enumerate(filters) if g == f]
        rows = None if f.empty else np.flatnonzero(index.mask(f))
        sub = x_unit if rows is None else x_unit[rows]
        for s in range(0, len(who), 50):
            part = who[s : s + 50]
            sims = sub @ queries[part].T
            top = np.argpartition(-sims, min(k, len(sub) - 1), axis=0)[:k]
            for j, i in enumerate(part):
                picked = top[:, j] if rows is None else rows[top[:, j]]
                out[i] = set(picked.tolist())
    return out


def timing(args: argparse.Namespace) -> None:
    import faiss

    from fusion.search import Filters, SimilarityIndex, normalise

    faiss.omp_set_num_threads(args.build_threads)
    t = time.perf_counter()
    x, meta = synthetic(args.n, args.dim, args.clusters, args.seed)
    print(
        f"synthetic: {args.n:,} vectors x {args.dim} dims, {args.clusters} clusters "
        f"in {time.perf_counter() - t:.1f} s"
    )
    t = time.perf_counter()
    index = SimilarityIndex(nlist=args.nlist, nprobe=args.nprobe).fit(x, meta)
    build_s = time.perf_counter() - t
    print(
        f"build: {index.kind_} index, {getattr(index.index_, 'nlist', 0)} lists, nprobe {args.nprobe}: "
        f"{build_s:.1f} s ({args.build_threads} threads)"
    )
    x_unit = normalise(x)
    del x
    rng = np.random.default_rng(args.seed + 1)
    qrows = rng.choice(args.n, size=args.queries, replace=False)
    # Queries near indexed images, not identical to them.
    queries = normalise(
        x_unit[qrows] + 0.3 * rng.normal(size=(args.queries, args.dim)).astype(np.float32) / np.sqrt(args.dim)
    )
    month = (pd.Timestamp("2026-03-01", tz="UTC"), pd.Timestamp("2026-04-01", tz="UTC"))
    own = index.meta_["label"].to_numpy()[qrows]
    cases = {
        "no filter": [Filters()] * len(qrows),
        "own class": [Filters(classes=(str(c),)) for c in own],
        "other class": [Filters(classes=("scratches" if c != "scratches" else "crazing",)) for c in own],
        "station + month": [Filters(stations=("TCM-T",), since=month[0], until=month[1])] * len(qrows),
        "class + grade + month": [
            Filters(classes=(str(c),), grades=("DC04",), since=month[0], until=month[1]) for c in own
        ],
    }
    faiss.omp_set_num_threads(args.query_threads)
    print(
        f"queries: {args.queries} single-vector queries, top {args.k}, {args.query_threads} faiss thread(s)"
    )
    print(
        f"{'filter':<24}{'selected':>12}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'recall@' + str(args.k):>11}"
    )
    for name, fs in cases.items():
        _run(index, queries[:5], args.k, fs[:5])  # warm up
        lat, got = _run(index, queries, args.k, fs)
        truth = _exact(index, x_unit, queries, args.k, fs)
        recall = np.mean([len(got[i] & truth[i]) / args.k for i in range(len(fs))])
        sel = np.mean([args.n if f.empty else int(index.mask(f).sum()) for f in fs])
        print(
            f"{name:<24}{sel:>12,.0f}{np.percentile(lat, 50):>9.2f}{np.percentile(lat, 95):>9.2f}"
            f"{lat.max():>9.2f}{recall:>11.3f}"
        )


def quality(args: argparse.Namespace) -> None:
    from coilmap.config import shared_data_dir
    from fusion.embeddings import embed_files, make_embedder
    from fusion.image_table import neu_table
    from fusion.search import SimilarityIndex, precision_at_k

    root = Path(args.data) if args.data else shared_data_dir()
    table = neu_table(root, hashes=False)
    table = table[table["split"].isin(["train", "val", "test"])].reset_index(drop=True)
    table["id"] = table["path"]
    test_rows = np.flatnonzero(table["split"].to_numpy() == "test")
    print(
        f"quality: NEU, {len(table)} images indexed (train+val+test), "
        f"{len(test_rows)} test queries, self excluded"
    )
    for kind in args.embedders:
        try:
            emb = make_embedder(kind, args.model)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other embedders
            print(f"  {kind}: not available ({exc})")
            continue
        t = time.perf_counter()
        vecs = embed_files(table["path"].tolist(), emb)
        embed_s = time.perf_counter() - t
        index = SimilarityIndex().fit(vecs, table)
        p10 = precision_at_k(index, test_rows, k=10)
        per = []
        for c in sorted(table["label"].unique()):
            rows = test_rows[table["label"].to_numpy()[test_rows] == c]
            per.append(f"{c} {precision_at_k(index, rows, k=10):.3f}")
        print(f"  {emb.name} ({emb.dim} dims, embedded in {embed_s:.1f} s): precision@10 {p10:.3f}")
        print("    per class: " + ", ".join(per))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="coilmap bench search", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--clusters", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--nlist", type=int, default=None, help="inverted lists (default: min(1024, 4 sqrt(n)))")
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--query-threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=None, help="shared data folder (default: COILMAP_SHARED_DATA)")
    ap.add_argument("--model", default=None, help="classifier model file (default: the NEU default model)")
    ap.add_argument("--embedders", nargs="+", default=["classifier", "thumbnail"])
    ap.add_argument("--timing-only", action="store_true")
    ap.add_argument("--quality-only", action="store_true")
    args = ap.parse_args(argv)
    if not args.quality_only:
        timing(args)
    if not args.timing_only:
        quality(args)


if __name__ == "__main__":
    main()
