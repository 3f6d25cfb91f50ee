"""``coilmap detect`` commands of the supervised detectors (classifier and segmenter).

- ``train-classifier --data DIR --out MODEL``: a folder per class, or the NEU layout;
- ``classify [--model MODEL] IMAGE...``: CSV ``path,label,confidence`` on stdout;
- ``train-segmenter --data DIR --out MODEL``: the magnetic tile layout (images + masks);
- ``segment [--model MODEL] IMAGE... [--masks-dir DIR]``: CSV, and mask PNGs if asked;
- ``evaluate [--model MODEL] [--data DIR] [--part test]``: the figures of either kind.

Without ``--model`` the project's default models in ``detection/default_models/`` are used.
Every bad input is an :class:`~coilmap.errors.InputError`, printed by the console script.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import click

from coilmap.config import shared_data_dir
from coilmap.errors import InputError
from detection.cli_manifest import command_line

_CLASSIFIER_FIGURES = ("n", "accuracy", "errors")
FREE_ALARM_RATE_HELP = ("The fraction of defect-free validation images that may reach any class's "
                        "image threshold (the rate of false alarms on clean images).")


def _expand(paths: tuple[str, ...]) -> list[Path]:
    """Image files named on the command line; a folder stands for the images in it."""
    from detection.images import image_files

    out: list[Path] = []
    for p in map(Path, paths):
        out += image_files(p) if p.is_dir() else [p]
    if not out:
        raise InputError("no images given")
    return out


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


@click.command("train-classifier")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(),
    help="DIR/<class>/*.png|jpg or the NEU layout (DIR/IMAGES, DIR/ANNOTATIONS).",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(),
    help="Model file to write (a .json manifest is written beside it).",
)
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(1, 1000))
@click.option("--input-px", default=160, show_default=True, type=click.IntRange(16, 1024))
@click.option("--blocks-per-stage", default=1, show_default=True, type=click.IntRange(1, 4))
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(2, 1024))
@click.option(
    "--paste-fraction",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Share of training samples made by guided crop-and-paste (needs boxes).",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--max-minutes",
    default=None,
    type=click.FloatRange(0.1, None),
    help="Wall-time cap of the training loop: stop before an epoch that would pass it "
    "(the best validation epoch so far is kept).",
)
@click.option(
    "--ema-decay",
    default=None,
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    help="Validate, keep and write the moving average of the weights with this decay per "
    "step (for example 0.998) instead of the weights themselves. Default: no average.",
)
@click.option(
    "--precise-bn",
    "precise_bn_images",
    default=0,
    show_default=True,
    type=click.IntRange(0, None),
    help="Before each validation, recompute the BatchNorm statistics as plain averages over "
    "this many augmented training images (0: keep the running averages).",
)
def train_classifier(
    data_dir: str,
    out_path: str,
    epochs: int,
    input_px: int,
    blocks_per_stage: int,
    batch_size: int,
    paste_fraction: float,
    seed: int,
    threads: int,
    max_minutes: float | None,
    ema_decay: float | None,
    precise_bn_images: int,
) -> None:
    """Train a defect classifier from scratch; report its figures on the held-out test part."""
    from detection.classifier.estimator import DefectClassifier, count_parameters
    from detection.classifier.metrics import unlearned_warnings
    from detection.classifier.training import evaluate_items, train_on_set
    from detection.datasets import discover

    data = discover(data_dir)
    clf = DefectClassifier(
        input_px=input_px,
        blocks_per_stage=blocks_per_stage,
        batch_size=batch_size,
        epochs=epochs,
        paste_fraction=paste_fraction,
        seed=seed,
        threads=threads,
        max_minutes=max_minutes,
        ema_decay=ema_decay,
        precise_bn_images=precise_bn_images,
    )
    clf, summary = train_on_set(data, clf, log=lambda s: click.echo(s, err=True))
    test = data.part("test")
    metrics: dict[str, Any] = {"val": summary["val"]}
    if test:
        metrics["test"] = evaluate_items(clf, test)
    manifest = {
        "command": command_line(),
        "data": data.describe(),
        "splits": "coilmap.datasplit (NEU: neu_part; render part never read) / stable hash "
        "70/15/15 for a folder per class; train = fit, val = model selection, test = figures",
        "metrics": metrics,
        "train_seconds": summary["train_seconds"],
        "threads": threads,
        "epochs_run": len(clf.history_),
        "parameters": count_parameters(clf.net_),
        "history": clf.history_,
        "warnings": unlearned_warnings(metrics),
    }
    mpath = clf.save(out_path, manifest)
    click.echo(f"wrote {out_path} and {mpath} (trained in {summary['train_seconds']} s)")
    echo_classifier_figures(metrics)


def echo_classifier_figures(metrics: dict[str, Any]) -> None:
    """Each part's accuracy, then the test part's confusion matrix (where there is one), then
    on stderr any part where the classifier is no better than its most common class."""
    from detection.classifier.metrics import format_confusion

    for part, m in metrics.items():
        click.echo(f"{part}: accuracy {m['accuracy']:.4f} ({m['errors']} errors of {m['n']})")
    if "test" in metrics:
        click.echo(format_confusion(metrics["test"]["confusion"], metrics["test"]["classes"]))
    echo_warnings(metrics)


def echo_warnings(metrics: dict[str, Any]) -> None:
    """:func:`~detection.classifier.metrics.unlearned_warnings` on stderr."""
    from detection.classifier.metrics import unlearned_warnings

    for w in unlearned_warnings(metrics):
        click.echo(f"warning: {w}", err=True)


@click.command("classify")
@click.option(
    "--model",
    "model_path",
    type=click.Path(),
    default=None,
    help="A classifier model file; default: detection/default_models/neu_classifier.pt.",
)
@click.argument("images", nargs=-1, required=True, type=click.Path())
def classify(model_path: str | None, images: tuple[str, ...]) -> None:
    """Print CSV path,label,confidence for each IMAGE (a folder stands for its images)."""
    from detection.classifier import load_classifier
    from detection.images import load_gray

    clf = load_classifier(model_path)
    files = _expand(images)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["path", "label", "confidence"])
    for s in range(0, len(files), 64):
        chunk = files[s : s + 64]
        proba = clf.predict_proba([load_gray(p) for p in chunk])
        for p, row in zip(chunk, proba, strict=True):
            writer.writerow([str(p), clf.classes_[int(row.argmax())], f"{float(row.max()):.4f}"])


@click.command("train-segmenter")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(),
    help="The magnetic tile layout: DIR/MT_<Class>/Imgs/<id>.jpg with <id>.png masks.",
)
@click.option("--out", "out_path", required=True, type=click.Path())
@click.option("--epochs", default=120, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--scale",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.05, 4.0),
    help="Resize factor applied to every image (1 = native pixels).",
)
@click.option(
    "--crop-px",
    default=128,
    show_default=True,
    type=click.IntRange(8, 2048),
    help="Side of the square training crops.",
)
@click.option("--width", default=24, show_default=True, type=click.IntRange(4, 256))
@click.option(
    "--synthetic",
    default=60,
    show_default=True,
    type=click.IntRange(0, 100000),
    help="Guided crop-and-paste images added per epoch.",
)
@click.option("--lr", default=4e-3, show_default=True, type=click.FloatRange(1e-6, 1.0))
@click.option("--free-per-epoch", default=200, show_default=True, type=click.IntRange(0, 100000))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--max-minutes",
    default=None,
    type=click.FloatRange(0.1, None),
    help="Wall-time cap of the training loop: the schedule follows the time fraction when it is "
    "ahead of the epoch fraction, and training stops before an epoch that would pass the cap.",
)
@click.option(
    "--val-every",
    default=2,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Validate (model selection, crop-and-paste class choice) every this many epochs.",
)
@click.option(
    "--val-from", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
    help="Validate (and so choose the epoch) only from this fraction of the run on (of the "
    "epochs, or of --max-minutes when that is ahead); the time saved goes into training.",
)
@click.option(
    "--blend-end", default=1.0, show_default=True, type=click.FloatRange(0.0, 1.0),
    help="The segmentation loss's share at the end of the run (it rises from 0 with the "
    "schedule); the rest stays the image-level classification loss on the mask maxima "
    "(1: segmentation alone at the end).",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16", "auto"]),
    default="fp32",
    show_default=True,
    help="bf16 trains in bfloat16 mixed precision (faster on a CPU with bfloat16 units, AMX); "
    "auto: bf16 where the network is measured faster in it here, else fp32. The model is saved "
    "and predicts in float32.",
)
@click.option(
    "--free-alarm-rate", default=0.05, show_default=True, type=click.FloatRange(0.0, 1.0),
    help=FREE_ALARM_RATE_HELP,
)
@click.option(
    "--hard-free", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
    help="The share of each epoch's defect-free images drawn by how strongly the network last "
    "called them defective (hard negatives); the rest are drawn uniformly.",
)
@click.option(
    "--edge-px", default=0.0, show_default=True, type=click.FloatRange(0.0, 10000.0),
    help="Give the network two more input planes, each pixel's proximity to the image's own "
    "top/bottom and left/right edges (exp(-distance / EDGE_PX), in scaled pixels), so that a "
    "training crop knows where the tile's real edge is (chipped corners, frayed edges); 0: "
    "the grey image alone.",
)
@click.option(
    "--edge-paste/--paste-anywhere", default=False, show_default=True,
    help="Crop-and-paste: a defect cut from where it reached its image's edge (a chip, a frayed "
    "edge, a crack across the tile) is pasted against an edge of the clean image again, not "
    "anywhere in it.",
)
def train_segmenter(
    data_dir: str,
    out_path: str,
    epochs: int,
    scale: float,
    crop_px: int,
    width: int,
    synthetic: int,
    lr: float,
    free_per_epoch: int,
    seed: int,
    threads: int,
    max_minutes: float | None,
    val_every: int,
    val_from: float,
    blend_end: float,
    precision: str,
    free_alarm_rate: float,
    hard_free: float,
    edge_px: float,
    edge_paste: bool,
) -> None:
    """Train a context aggregation network; report its figures on the test part."""
    import torch

    from detection.datasets import discover
    from detection.mixed_precision import resolve_training_precision
    from detection.segmentation.estimator import DefectSegmenter
    from detection.segmentation.torch_model import ContextAggregationNetwork
    from detection.segmentation.training import evaluate_items, train_on_set

    # the network of the usual five defect classes, timed at the run's thread count: the
    # data is read after this check
    torch.set_num_threads(threads)
    precision, message = resolve_training_precision(
        precision, ContextAggregationNetwork(5, width).eval(), torch.rand(8, 1, crop_px, crop_px))
    if message:
        click.echo(message, err=True)
    data = discover(data_dir)
    seg = DefectSegmenter(
        scale=scale,
        crop_px=crop_px,
        width=width,
        epochs=epochs,
        lr=lr,
        free_per_epoch=free_per_epoch,
        seed=seed,
        threads=threads,
        max_minutes=max_minutes,
        val_every=val_every,
        val_from=val_from,
        blend_end=blend_end,
        precision=precision,
        free_alarm_rate=free_alarm_rate,
        hard_free=hard_free,
        edge_px=edge_px,
        edge_paste=edge_paste,
    )
    seg, summary = train_on_set(data, seg, n_synthetic=synthetic, log=lambda s: click.echo(s, err=True))
    test = data.part("test")
    metrics = {"test": evaluate_items(seg, test)} if test else {}
    manifest = {
        "command": command_line(),
        "data": data.describe(),
        "splits": "coilmap.datasplit.mt_parts (by tile): train = fit, val = model selection and guided "
        "crop-and-paste class choice, test = figures",
        "metrics": metrics,
        "train_seconds": summary["train_seconds"],
        "threads": threads,
        "history": seg.history_,
    }
    mpath = seg.save(out_path, manifest)
    click.echo(f"wrote {out_path} and {mpath} (trained in {summary['train_seconds']} s)")
    if metrics:
        _print_segmenter_figures(metrics["test"])


@click.command("segment")
@click.option(
    "--model",
    "model_path",
    type=click.Path(),
    default=None,
    help="A segmenter model file (a gated or stacked one too); default: "
    "detection/default_models/mt_segmenter_gated.pt (mt_segmenter.pt read through mt_anomaly.pt).",
)
@click.option(
    "--masks-dir",
    type=click.Path(),
    default=None,
    help="Write each image's defect mask here as <stem>_mask.png (the pixels of the class the image "
    "is called; empty for an image called defect-free).",
)
@click.argument("images", nargs=-1, required=True, type=click.Path())
def segment(model_path: str | None, masks_dir: str | None, images: tuple[str, ...]) -> None:
    """Print CSV path,label,confidence per IMAGE: the class the model calls and its
    confidence. A segmenter (the default) calls the defect class furthest over its own
    threshold, with its probability, or Free where every class stays below its threshold, with
    how far below (0.5 at a threshold, towards 1 far below every one); a stacked model the
    class its head finds most probable, Free included, with that probability."""
    from detection.images import load_gray, save_gray
    from detection.segmentation import load_segmenter

    seg = load_segmenter(model_path)
    files = _expand(images)
    out = Path(masks_dir) if masks_dir else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["path", "label", "confidence"])
    for p in files:
        im = load_gray(p)
        if out is None:
            proba = seg.predict_proba([im])[0]
        else:  # class scores and masks from one pass of the network
            probas, maps = seg.predict_all([im])
            proba = probas[0]
        label = str(seg.labels(proba[None])[0])
        writer.writerow([str(p), label, f"{float(seg.confidences(proba[None])[0]):.4f}"])
        if out is not None:
            mask = seg.pixel_labels(probas, maps)[0] > 0  # the called class's pixels
            save_gray(out / f"{p.stem}_mask.png", mask.astype(float))


@click.command("evaluate")
@click.option(
    "--model",
    "model_path",
    type=click.Path(),
    default=None,
    help="A classifier or segmenter file; default: the default NEU classifier.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(),
    default=None,
    help="Labelled images; default: the shared NEU data (classifier) or magnetic tile data (segmenter).",
)
@click.option(
    "--part",
    type=click.Choice(["test", "val", "train", "all"]),
    default="test",
    show_default=True,
    help="Which part to measure on ('all' for a folder you did not train on).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def evaluate(model_path: str | None, data_dir: str | None, part: str, as_json: bool) -> None:
    """Print a model's figures on a labelled data folder (accuracy, confusion, AP, IoU)."""
    from detection.classifier import DEFAULT_MODEL
    from detection.classifier.artefact import model_kind
    from detection.datasets import discover

    path = Path(model_path) if model_path else DEFAULT_MODEL
    kind = model_kind(path)
    default_data = "neu_det" if kind == "classifier" else "magnetic_tile"
    data = discover(data_dir or shared_data_dir() / default_data)
    items = data.part(part)
    if not items:
        raise InputError(f"the {part} part holds no images", source=str(data.root))
    if kind == "classifier":
        from detection.classifier.estimator import DefectClassifier
        from detection.classifier.metrics import format_confusion
        from detection.classifier.training import evaluate_items

        m = evaluate_items(DefectClassifier.load(path), items)
        if as_json:
            _echo_json(m)
            return
        click.echo(f"model {path}\ndata {data.root} ({data.layout}), part {part}")
        click.echo(f"accuracy {m['accuracy']:.4f} ({m['errors']} errors of {m['n']})")
        click.echo(format_confusion(m["confusion"], m["classes"]))
        for e in m["misclassified"]:
            click.echo(f"  {e['image']}: {e['true']} -> {e['pred']}")
        echo_warnings({part: m})
    else:
        from detection.segmentation.estimator import DefectSegmenter
        from detection.segmentation.training import evaluate_items as evaluate_segmenter

        m = evaluate_segmenter(DefectSegmenter.load(path), items)
        if as_json:
            _echo_json(m)
            return
        click.echo(f"model {path}\ndata {data.root} ({data.layout}), part {part}")
        _print_segmenter_figures(m)


def _print_segmenter_figures(m: dict[str, Any]) -> None:
    from detection.classifier.metrics import format_confusion

    click.echo(f"images {m['n']}: accuracy {m['accuracy']:.4f} ({m['errors']} errors), "
               f"balanced accuracy {m['balanced_accuracy']:.4f}")
    click.echo(f"mAP (all classes) {100 * m['mAP']:.2f}")
    click.echo("AP  " + "  ".join(f"{c} {100 * v:.1f}" for c, v in m["AP"].items() if v is not None))
    click.echo(f"mIoU (all classes, background included) {100 * m['mIoU_all']:.2f}")
    click.echo(f"mIoU (defect classes) {100 * m['mIoU_defect']:.2f}")
    click.echo("IoU " + "  ".join(f"{c} {100 * v:.1f}" for c, v in m["IoU"].items() if v is not None))
    click.echo(
        "IoU on each class's own images "
        + "  ".join(f"{c} {100 * v:.1f}" for c, v in m["IoU_own_images"].items() if v is not None)
    )
    click.echo("thresholds: image " + "  ".join(f"{c} {t:.4g}" for c, t in m["image_thresholds"].items())
               + f", pixel {m['pixel_threshold']:.4g}")
    sel = m["selection"]
    click.echo(f"selection criterion (threshold-free): image mAP {sel['mAP']:.4f} + best cell IoU "
               f"{sel['cell_iou']:.4f} = {sel['criterion']:.4f}")
    click.echo(format_confusion(m["confusion"], m["classes"]))


COMMANDS = [train_classifier, classify, evaluate, train_segmenter, segment]
