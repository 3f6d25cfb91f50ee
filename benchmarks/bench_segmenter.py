"""Speed of trained segmenters: whole magnetic-tile images per second on this machine.

    coilmap bench segmenter detection/default_models/mt_segmenter.pt /tmp/f_flips.pt \
        --images 64 --threads 1 --repeats 3

Each model segments the same test images (``predict_all``: class scores and per-class
probability maps at each image's own size), after a warm-up on the first one, and prints one
JSON line. Beside the images per second it prints the megapixels per second, since the
magnetic-tile images differ in size (about 0.03-0.25 Mpx).
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import torch

from benchmarks.timing import best_seconds
from coilmap.config import shared_data_dir
from detection.anomaly.evaluate import mt_test_items
from detection.images import load_gray
from detection.segmentation import load_segmenter


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    items = mt_test_items(shared_data_dir() / "magnetic_tile")[: args.images]
    images = [load_gray(it.image) for it in items]
    megapixels = sum(im.size for im in images) / 1e6
    for path in args.models:
        seg = load_segmenter(path)
        seg.predict_all(images[:1])  # warm-up
        best = best_seconds(partial(seg.predict_all, images), args.repeats)
        masks = getattr(seg, "segmenter", seg)  # a gated or stacked model: the segmenter that draws its masks
        print(json.dumps({
            "model": str(path), "architecture": type(seg).__name__,
            "reads_anomaly_scorer": masks is not seg,
            "members": len(getattr(masks, "members", [masks])),
            "flips": bool(getattr(masks, "flips", False)), "images": len(images),
            "threads": args.threads, "best_seconds": round(best, 3),
            "images_per_second": round(len(images) / best, 1),
            "megapixels_per_second": round(megapixels / best, 2),
        }))


if __name__ == "__main__":
    main()
