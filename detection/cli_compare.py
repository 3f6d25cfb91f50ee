"""``coilmap detect compare-anomaly``: two anomaly scorers on the same magnetic-tile images, the
difference of their AUROCs and its 95 % interval over resampled tiles
(:mod:`detection.anomaly.compare`); ``coilmap detect compare-segmenter``: the same for two
segmenters' AP per class and mAP (:mod:`detection.segmentation.compare`). Both print JSON.

On the selection set or the val part they say whether a preference between two candidates is
more than the noise of a few tiles; on the test part, how far a test figure can be trusted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from coilmap.config import shared_data_dir
from detection.cli_manifest import command_line


def _comparison_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--model (twice), --resamples, --seed and --threads: the options every comparison takes."""
    for option in reversed([
        click.option("--model", "model_paths", required=True, multiple=True, type=click.Path(path_type=Path),
                     help="Give it twice: model a, then model b (the difference is b - a)."),
        click.option("--resamples", type=click.IntRange(10, 100_000), default=2000, show_default=True),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True),
    ]):
        command = option(command)
    return command


def _two_models(model_paths: tuple[Path, ...], threads: int) -> None:
    """Exactly two models, or a clear error; torch set to ``threads``."""
    import torch

    from coilmap.errors import InputError

    if len(model_paths) != 2:
        raise InputError(f"give --model exactly twice (a, then b), not {len(model_paths)} times")
    torch.set_num_threads(threads)


def _tile_ids(folders_and_stems: list[tuple[Path, str]], labels: list[str]) -> list[str]:
    """``<label>:<tile>`` of each image: the exposures of one tile grouped over the whole of its
    class folder (:func:`coilmap.datasplit.mt_tile_groups`), not only the images compared."""
    from coilmap.datasplit import mt_tile_groups

    groups = {f: mt_tile_groups(sorted(p.stem for p in f.glob("*.jpg"))) for f, _ in folders_and_stems}
    return [f"{label}:{groups[f].get(stem, stem)}"
            for (f, stem), label in zip(folders_and_stems, labels, strict=True)]


@click.command("compare-anomaly")
@_comparison_options
@click.option("--data", "mt_root", type=click.Path(path_type=Path), default=None,
              help="The magnetic_tile folder (default: $COILMAP_SHARED_DATA/magnetic_tile).")
@click.option("--selection", is_flag=True,
              help="The selection set (as evaluate-anomaly --selection) instead of the test part.")
def compare_anomaly(model_paths: tuple[Path, ...], mt_root: Path | None, selection: bool,
                    resamples: int, seed: int, threads: int) -> None:
    """Two anomaly scorers on the same images: AUROC difference and its interval by tile."""
    import numpy as np

    from detection.anomaly import load_scorer
    from detection.anomaly.compare import map_histograms, paired_tile_bootstrap
    from detection.anomaly.evaluate import mt_selection_items, mt_test_items
    from detection.images import load_gray

    _two_models(model_paths, threads)
    root = Path(mt_root) if mt_root is not None else shared_data_dir() / "magnetic_tile"
    items = mt_selection_items(root) if selection else mt_test_items(root)
    tiles = np.array(_tile_ids([(it.image.parent, it.image_id) for it in items],
                               [it.class_dir for it in items]))
    labels = np.array([it.is_defect for it in items])
    images = [load_gray(it.image) for it in items]
    masks = [it.defect_mask(im.shape) for it, im in zip(items, images, strict=True)]
    scored = []
    for path in model_paths:
        maps, scores = load_scorer(path).score_maps_and_samples(images)
        scored.append((np.asarray(scores, np.float64), map_histograms(maps, masks)))
    result = paired_tile_bootstrap(labels, tiles, scored[0][0], scored[1][0], pixels_a=scored[0][1],
                                   pixels_b=scored[1][1], resamples=resamples, seed=seed)
    click.echo(json.dumps({"command": command_line(), "a": str(model_paths[0]), "b": str(model_paths[1]),
                           "set": "selection" if selection else "test", **result}, indent=2))


@click.command("compare-segmenter")
@_comparison_options
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="The magnetic_tile layout (default: $COILMAP_SHARED_DATA/magnetic_tile).")
@click.option("--part", type=click.Choice(["test", "val"]), default="test", show_default=True)
def compare_segmenter(model_paths: tuple[Path, ...], data_dir: Path | None, part: str,
                      resamples: int, seed: int, threads: int) -> None:
    """Two segmenters on the same images: AP and mAP differences and their intervals by tile."""
    import numpy as np

    from coilmap.errors import InputError
    from detection.datasets import MT_FREE, discover, load_images
    from detection.segmentation import load_segmenter
    from detection.segmentation.compare import paired_map_bootstrap
    from detection.segmentation.training import image_calls

    _two_models(model_paths, threads)
    data = discover(data_dir or shared_data_dir() / "magnetic_tile")
    items = data.part(part)
    if not items:
        raise InputError(f"the {part} part holds no images", source=str(data.root))
    models = [load_segmenter(p) for p in model_paths]
    if models[0].classes_ != models[1].classes_:
        raise InputError(f"the models' classes differ: {models[0].classes_} and {models[1].classes_}")
    tiles = np.array(_tile_ids([(it.path.parent, it.path.stem) for it in items], [it.label for it in items]))
    y = image_calls(items, models[0].classes_, source=str(data.root))
    images = load_images(items)
    scores = []
    for seg in models:
        proba = np.concatenate([seg.predict_proba(images[s : s + 32]) for s in range(0, len(images), 32)])
        scores.append(np.column_stack([seg.free_scores(proba), proba]))
    result = paired_map_bootstrap(y, tiles, scores[0], scores[1], [MT_FREE, *models[0].classes_],
                                  resamples=resamples, seed=seed)
    click.echo(json.dumps({"command": command_line(), "a": str(model_paths[0]), "b": str(model_paths[1]),
                           "part": part, **result}, indent=2))


COMMANDS = [compare_anomaly, compare_segmenter]
