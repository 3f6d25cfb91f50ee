"""``coilmap detect combine-segmenter``: trained segmenters and mirror views averaged into one model;
``coilmap detect retune-segmenter``: a trained segmenter's image and pixel thresholds chosen again;
``coilmap detect gate-segmenter``: a trained segmenter's classes read through a trained anomaly
scorer (:mod:`detection.segmentation.gated`), nothing trained.

The members' low-resolution mask logits are averaged (with ``--flips`` also over each image's
three mirror views), the thresholds chosen again on the val part of ``--data``, and the figures
on its test part written to the manifest, as ``train-segmenter`` does. The result is an ordinary
segmenter file: ``segment``, ``evaluate`` and the workers load it like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from coilmap.config import shared_data_dir
from detection.cli_classify import FREE_ALARM_RATE_HELP, _print_segmenter_figures
from detection.cli_manifest import command_line, read_manifest, retuned_manifest, source_models


def _thresholds_options(data_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--data (``data_help``, then what its parts are for), --out, --free-alarm-rate and
    --threads: the options of a command that chooses a model's thresholds on val."""
    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed([
            click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
                         help=f"{data_help} (val: thresholds, test: figures); default: the shared "
                              "magnetic tile data."),
            click.option("--out", "out_path", required=True, type=click.Path(path_type=Path)),
            click.option("--free-alarm-rate", type=click.FloatRange(0.0, 1.0), default=0.05,
                         show_default=True, help=FREE_ALARM_RATE_HELP),
            click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True),
        ]):
            command = option(command)
        return command
    return decorate


@click.command("combine-segmenter")
@click.option("--model", "model_paths", required=True, multiple=True, type=click.Path(path_type=Path),
              help="A trained segmenter (give it once with --flips, or several times).")
@click.option("--flips", is_flag=True,
              help="Also average each image's left-right, up-down and both-ways mirror views.")
@_thresholds_options("The magnetic tile layout the members were trained on")
def combine_segmenter(model_paths: tuple[Path, ...], flips: bool, data_dir: Path | None,
                      out_path: Path, free_alarm_rate: float, threads: int) -> None:
    """Average trained segmenters (and mirror views) into one model; print its test figures."""
    import torch

    from coilmap.errors import InputError
    from detection.datasets import discover
    from detection.segmentation import load_segmenter
    from detection.segmentation.ensemble import SegmenterEnsemble
    if len(model_paths) < 2 and not flips:
        raise InputError("one model without --flips is that model: give --model twice or more, or --flips")
    torch.set_num_threads(threads)
    data = discover(data_dir or shared_data_dir() / "magnetic_tile")
    members = [load_segmenter(p) for p in model_paths]
    ensemble = SegmenterEnsemble(members, flips=flips, free_alarm_rate=free_alarm_rate)
    metrics = _thresholds_and_figures(ensemble, data)
    sources = []
    for p in model_paths:
        m = read_manifest(p)
        sources.append({"model": str(p), "command": m.get("command"),
                        "train_seconds": m.get("train_seconds"),
                        "test_mAP": m.get("metrics", {}).get("test", {}).get("mAP")})
    manifest = {
        "command": command_line(),
        "data": data.describe(),
        "splits": "coilmap.datasplit.mt_parts (by tile): members fit on train; val = the ensemble's "
                  "thresholds; test = figures",
        "members": sources,
        "flips": flips,
        "metrics": metrics,
    }
    mpath = ensemble.save(out_path, manifest)
    click.echo(f"wrote {out_path} and {mpath} ({len(members)} member(s), flips {flips})")
    sel = metrics["val"]["selection"]
    click.echo(f"val: mAP {100 * metrics['val']['mAP']:.2f}, mIoU (defect classes) "
               f"{100 * metrics['val']['mIoU_defect']:.2f}; selection criterion {sel['criterion']:.4f} "
               f"(mAP {sel['mAP']:.4f} + best cell IoU {sel['cell_iou']:.4f})")
    if "test" in metrics:
        _print_segmenter_figures(metrics["test"])


def _thresholds_and_figures(seg: Any, data: Any) -> dict[str, Any]:
    """``seg``'s thresholds chosen on the val part of ``data``, then its figures on val and
    (where there is one) on the test part."""
    from coilmap.errors import InputError
    from detection.segmentation.training import evaluate_items, load_with_masks

    val = data.part("val")
    if not val:
        raise InputError("no validation images to choose the thresholds on", source=str(data.root))
    seg._choose_thresholds(*load_with_masks(val, seg.classes_))
    metrics = {"val": evaluate_items(seg, val)}
    test = data.part("test")
    if test:
        metrics["test"] = evaluate_items(seg, test)
    return metrics


@click.command("retune-segmenter")
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path),
              help="A trained segmenter file (one network or a combined one).")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="The magnetic tile layout it was trained on (val: thresholds, test: figures); "
                   "default: the shared magnetic tile data.")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path))
@click.option("--free-alarm-rate", type=click.FloatRange(0.0, 1.0), default=None,
              help=FREE_ALARM_RATE_HELP + " Default: the model's own.")
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True)
def retune_segmenter(model_path: Path, data_dir: Path | None, out_path: Path,
                     free_alarm_rate: float | None, threads: int) -> None:
    """Choose a trained segmenter's thresholds again on the val part (one image threshold per
    class, the pixel threshold), nothing trained; print its test figures."""
    import torch

    from detection.datasets import discover
    from detection.segmentation import load_segmenter

    torch.set_num_threads(threads)
    data = discover(data_dir or shared_data_dir() / "magnetic_tile")
    seg = load_segmenter(model_path)
    if free_alarm_rate is not None:
        seg.free_alarm_rate = free_alarm_rate
    metrics = _thresholds_and_figures(seg, data)
    old = read_manifest(model_path)
    manifest = retuned_manifest(old, {
        "command": command_line(), "from": str(model_path),
        "free_alarm_rate": seg.free_alarm_rate, "metrics_before": old.get("metrics"),
    }, drop=("metrics",))
    manifest["metrics"] = metrics
    mpath = seg.save(out_path, manifest)
    click.echo(f"wrote {out_path} and {mpath}")
    if "test" in metrics:
        _print_segmenter_figures(metrics["test"])


@click.command("gate-segmenter")
@click.option("--segmenter", "segmenter_path", type=click.Path(path_type=Path), default=None,
              help="A trained segmenter; default: detection/default_models/mt_segmenter.pt (the "
                   "default networks, two averaged over their mirror views).")
@click.option("--anomaly", "anomaly_path", type=click.Path(path_type=Path), default=None,
              help="A trained anomaly scorer (the file stays where it is; the gated model names it); "
                   "default: detection/default_models/mt_anomaly.pt.")
@_thresholds_options("The magnetic tile layout")
def gate_segmenter(segmenter_path: Path | None, anomaly_path: Path | None, data_dir: Path | None,
                   out_path: Path, free_alarm_rate: float, threads: int) -> None:
    """Each class's image score from its anomalous-feature map (the segmenter's class
    probability times the anomaly map); thresholds chosen on val; print the test figures."""
    import torch

    from detection.anomaly import DEFAULT_MODEL as DEFAULT_ANOMALY
    from detection.anomaly import load_scorer
    from detection.datasets import discover
    from detection.segmentation import DEFAULT_NETWORKS as DEFAULT_SEGMENTER
    from detection.segmentation import load_segmenter
    from detection.segmentation.gated import GatedSegmenter

    torch.set_num_threads(threads)
    seg_path = segmenter_path or DEFAULT_SEGMENTER
    anomaly_file = anomaly_path or DEFAULT_ANOMALY
    data = discover(data_dir or shared_data_dir() / "magnetic_tile")
    gated = GatedSegmenter(load_segmenter(seg_path), load_scorer(anomaly_file), anomaly_file,
                           free_alarm_rate=free_alarm_rate)
    metrics = _thresholds_and_figures(gated, data)
    manifest = {
        "command": command_line(),
        "data": data.describe(),
        "splits": "coilmap.datasplit.mt_parts (by tile): the segmenter trained on train (val chose "
                  "its epoch), the anomaly scorer on MT_Free train; val = this model's thresholds; "
                  "test = figures",
        **source_models(out_path, segmenter=seg_path, anomaly=anomaly_file),  # relative to out_path
        "metrics": metrics,
    }
    mpath = gated.save(out_path, manifest)
    click.echo(f"wrote {out_path} and {mpath}")
    click.echo(f"val: mAP {100 * metrics['val']['mAP']:.2f}, mIoU (defect classes) "
               f"{100 * metrics['val']['mIoU_defect']:.2f}")
    if "test" in metrics:
        _print_segmenter_figures(metrics["test"])


COMMANDS = [combine_segmenter, retune_segmenter, gate_segmenter]
