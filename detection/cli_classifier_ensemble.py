"""``coilmap detect combine-classifier``: trained classifiers' class probabilities averaged into
one model (:mod:`detection.classifier.ensemble`); nothing is trained.

The result is an ordinary classifier file: ``classify``, ``evaluate``, the detection workers and
the fusion embeddings load it like any other. Its manifest names each member's file, command and
figures, and holds the ensemble's own figures on the val and test parts of ``--data``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from coilmap.config import shared_data_dir
from detection.cli_classify import echo_classifier_figures
from detection.cli_manifest import command_line, read_manifest


@click.command("combine-classifier")
@click.option("--model", "model_paths", required=True, multiple=True, type=click.Path(path_type=Path),
              help="A trained classifier (give two or more).")
@click.option("--data", "data_dir", type=click.Path(path_type=Path), default=None,
              help="The labelled folder the members were trained on (its val and test parts give "
                   "the figures); default: the shared NEU data.")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path))
@click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True)
def combine_classifier(model_paths: tuple[Path, ...], data_dir: Path | None, out_path: Path,
                       threads: int) -> None:
    """Average trained classifiers into one model; print its val and test figures."""
    import torch

    from detection.classifier import load_classifier
    from detection.classifier.ensemble import ClassifierEnsemble
    from detection.classifier.metrics import unlearned_warnings
    from detection.classifier.training import evaluate_items
    from detection.datasets import discover

    torch.set_num_threads(threads)
    ensemble = ClassifierEnsemble([load_classifier(p) for p in model_paths])
    data = discover(data_dir or shared_data_dir() / "neu_det")
    metrics: dict[str, Any] = {part: evaluate_items(ensemble, data.part(part))
                               for part in ("val", "test") if data.part(part)}
    members = []
    for p in model_paths:
        m = read_manifest(p)
        members.append({
            "model": str(p), "command": m.get("command"), "train_seconds": m.get("train_seconds"),
            **{f"{part}_accuracy": m.get("metrics", {}).get(part, {}).get("accuracy")
               for part in ("val", "test")},
        })
    manifest = {
        "command": command_line(),
        "data": data.describe(),
        "splits": "coilmap.datasplit: members fit on train (epochs and views chosen on val); "
                  "the ensemble trains nothing; val and test give its figures",
        "members": members,
        "train_seconds": round(sum(m["train_seconds"] or 0.0 for m in members), 1),
        "metrics": metrics,
        "warnings": unlearned_warnings(metrics),
    }
    mpath = ensemble.save(out_path, manifest)
    click.echo(f"wrote {out_path} and {mpath} ({len(members)} members)")
    echo_classifier_figures(metrics)


COMMANDS = [combine_classifier]
