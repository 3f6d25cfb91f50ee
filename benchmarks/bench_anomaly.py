"""Throughput of trained anomaly scorers: 256 x 256 tiles per second on this machine.

    .venv/bin/python benchmarks/bench_anomaly.py detection/default_models/mt_anomaly*.pt \
        --tiles 64 --threads 2 [--workers 2]

Tiles are cut (``detection.tiling``) from magnetic-tile test images, so the scorers see real
surface; each model scores the same tiles (maps and image scores), after one warm-up batch.
``--workers W`` scores the tiles as W runs at once, one torch thread each
(:meth:`~detection.anomaly.base.AnomalyScorer.score_maps_and_samples`). Prints one JSON line
per model.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import numpy as np
import torch

from benchmarks.timing import best_seconds
from coilmap.config import shared_data_dir
from detection.anomaly import load_scorer
from detection.anomaly.evaluate import mt_test_items
from detection.images import load_gray
from detection.tiling import make_grid, tile


def real_tiles(n: int, size: int = 256) -> list[np.ndarray]:
    """``n`` tiles of ``size`` pixels from magnetic-tile test images (edges padded as the grid says)."""
    tiles: list[np.ndarray] = []
    for item in mt_test_items(shared_data_dir() / "magnetic_tile"):
        image = load_gray(item.image)
        tiles.extend(tile(image, make_grid(image.shape, tile=size)))
        if len(tiles) >= n:
            break
    return tiles[:n]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--tiles", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1,
                        help="score the tiles as this many runs at once, one torch thread each")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    tiles = real_tiles(args.tiles)
    for path in args.models:
        scorer = load_scorer(path)
        scorer.score_maps_and_samples(tiles[: scorer.batch_size])  # warm-up
        best = best_seconds(partial(scorer.score_maps_and_samples, tiles, workers=args.workers), args.repeats)
        print(json.dumps({
            "model": str(path), "kind": scorer.kind, "input_size": scorer.input_size,
            "tiles": len(tiles), "threads": args.threads, "workers": args.workers,
            "best_seconds": round(best, 3),
            "tiles_per_second": round(len(tiles) / best, 1),
            "scoring_precisions": scorer.scoring_precisions(),
        }))


if __name__ == "__main__":
    main()
