"""``coilmap detect stack-segmenter``: a trained segmenter and a trained anomaly scorer read
together by a logistic head (:class:`~detection.segmentation.stacked.StackedSegmenter`).

The head is fitted on the evidence of the train and val parts of ``--data`` (nothing in either
model changes), its strength chosen by cross-validated mAP over those images, the folds split
by tile (one tile's exposures never in two folds); the figures on
the test part go to the manifest, as ``train-segmenter`` writes them. The result loads as a
segmenter: ``segment``, ``evaluate`` and the workers take it like any other.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from coilmap.config import shared_data_dir
from detection.cli_classify import _print_segmenter_figures
from detection.cli_manifest import command_line, source_models


def _floats(text: str) -> list[float]:
    from coilmap.errors import InputError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise InputError(f"--c-grid: comma-separated positive numbers, not {text!r}") from exc
    if not values or any(v <= 0 for v in values):
        raise InputError(f"--c-grid: comma-separated positive numbers, not {text!r}")
    return values


@click.command("stack-segmenter")
@click.option("--segmenter", "segmenter_path", type=click.Path(path_type=Path), default=None,
              help="A trained segmenter; default: detection/default_models/mt_segmenter.pt.")
@click.option("--anomaly", "anomaly_path", type=click.Path(path_type=Path), default=None,
              help="A trained anomaly scorer holding a PatchCore feature extractor (the model file "
                   "stays where it is; the stacked model names it); default: "
                   "detection/default_models/mt_anomaly.pt.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="The magnetic tile layout (train + val: the head; test: figures); default: the "
                   "shared magnetic tile data.")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path))
@click.option("--c-grid", default="0.3,1,3,10,30", show_default=True,
              help="The head's inverse regularisation strengths to choose from by cross-validated mAP.")
@click.option("--flips", is_flag=True,
              help="Fit the head on each image's four mirror views and average them when predicting "
                   "(four times the anomaly scorer's work per image).")
@click.option("--folds", type=click.IntRange(2, 20), default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True)
def stack_segmenter(segmenter_path: Path | None, anomaly_path: Path | None, data_dir: Path | None,
                    out_path: Path, c_grid: str, flips: bool, folds: int, seed: int, threads: int) -> None:
    """Fit a logistic head over a segmenter's and an anomaly scorer's evidence; print its test figures."""
    import torch

    from coilmap.errors import InputError
    from detection.anomaly import DEFAULT_MODEL as DEFAULT_ANOMALY
    from detection.anomaly import load_scorer
    from detection.datasets import discover, load_images
    from detection.segmentation import DEFAULT_NETWORKS as DEFAULT_SEGMENTER
    from detection.segmentation import load_segmenter
    from detection.segmentation.stacked import StackedSegmenter
    from detection.segmentation.training import evaluate_items, image_calls, tile_keys

    torch.set_num_threads(threads)
    grid = _floats(c_grid)
    seg_path = segmenter_path or DEFAULT_SEGMENTER
    anomaly_file = anomaly_path or DEFAULT_ANOMALY
    data = discover(data_dir or shared_data_dir() / "magnetic_tile")
    if data.layout != "mt":
        raise InputError("the stacked segmenter fits on the magnetic tile layout "
                         "(MT_<Class>/Imgs/<id>.jpg + .png)", source=str(data.root))
    segmenter = load_segmenter(seg_path)
    stacked = StackedSegmenter(segmenter, load_scorer(anomaly_file), anomaly_file, c_grid=grid,
                               folds=folds, seed=seed, flips=flips)
    items = data.part("train") + data.part("val")
    calls = image_calls(items, segmenter.classes_, source=str(data.root))
    t0 = time.perf_counter()
    # a tile's exposures stay in one fold: the figure is for tiles the head did not see
    stacked.fit(load_images(items), calls, tile_keys(items))
    fit_seconds = round(time.perf_counter() - t0, 1)
    metrics = {"cv_mAP": {str(c): round(v, 4) for c, v in stacked.cv_map_.items()},
               "c": stacked.head_.c}
    test = data.part("test")
    if test:
        metrics["test"] = evaluate_items(stacked, test)
    manifest = {
        "command": command_line(),
        "data": data.describe(),
        "splits": "coilmap.datasplit.mt_parts (by tile): the segmenter trained on train (val chose its epoch "
                  "and thresholds), the anomaly scorer on MT_Free train; the head on train + val, "
                  f"its C by {folds}-fold cross-validated mAP there, folds by tile "
                  "(coilmap.datasplit.mt_tile_groups); test = figures (tiles in neither train nor val)",
        # the two models, named relative to this one's folder
        **source_models(out_path, segmenter=seg_path, anomaly=anomaly_file),
        "train_seconds": fit_seconds,
        "metrics": metrics,
    }
    mpath = stacked.save(out_path, manifest)
    click.echo(f"wrote {out_path} and {mpath} (head fitted on {len(items)} images in {fit_seconds} s)")
    click.echo("cross-validated mAP by C: " + "  ".join(
        f"{c:g} {100 * v:.2f}" for c, v in stacked.cv_map_.items()) + f"; chosen C {stacked.head_.c:g}")
    if "test" in metrics:
        _print_segmenter_figures(metrics["test"])


COMMANDS = [stack_segmenter]
