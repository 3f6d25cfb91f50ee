"""``coilmap detect train-ensemble | combine-anomaly``: anomaly scorers combined into one model.

``combine-anomaly`` joins scorers trained already. ``train-ensemble`` trains its members side by
side, one ``train-anomaly`` process per member (each on its own core with one torch thread), and
then combines them, so an ensemble of two 12-minute members costs 12 minutes of wall time on a
two-core machine rather than 24. The members' files are written beside the ensemble
(``<out>.member<i>.pt`` + manifests) and kept: the ensemble holds their weights itself, but each
member can be evaluated alone.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from coilmap.errors import InputError
from detection.cli_anomaly import _split_normal, _training_data
from detection.cli_manifest import command_line, read_manifest
from detection.images import load_gray

# Options of ``train-anomaly`` that ``train-ensemble`` sets itself for every member.
_RESERVED = ("--normal", "--out")


def combine(model_paths: list[Path], normal_dir: Path, out_path: Path,
            manifest_extra: dict[str, Any] | None = None, map_only: Sequence[Path] = ()) -> Any:
    """Load ``model_paths`` (then ``map_only``: members whose maps count but not their image
    scores), set the ensemble's thresholds on the val part of ``normal_dir``, save it to
    ``out_path`` with a manifest naming each member's command; the ensemble."""
    from detection.anomaly.artefact import load, save
    from detection.anomaly.ensemble.scorer import EnsembleScorer

    every = [*model_paths, *map_only]
    if len(every) < 2 or not model_paths:
        raise InputError("an ensemble needs at least two members (give two or more), "
                         "at least one of them for the image score")
    members = [load(p) for p in every]
    split = _split_normal(normal_dir)
    _, val_files, _ = split
    scorer = EnsembleScorer(members=members, map_only=list(range(len(model_paths), len(every))))
    scorer.fit(None, X_val=[load_gray(p) for p in val_files])
    sources = []
    for p in every:
        m = read_manifest(p)
        sources.append({"model": str(p), "command": m.get("command"), "map_only": p in map_only,
                        "training_seconds": m.get("training_seconds"), "retuned": m.get("retuned")})
    manifest = {"command": command_line(), "members": sources,
                "training_seconds": sum(float(m["training_seconds"] or 0) for m in sources),
                "metrics": {}, **(manifest_extra or {})}
    training_data = _training_data(normal_dir, split, "members fit on train, val thresholds")
    manifest_path = save(scorer, out_path, training_data=training_data, manifest=manifest)
    click.echo(f"ensemble of {len(members)} -> {out_path} (manifest {manifest_path}); "
               f"image threshold {scorer.threshold_:.4g}")
    return scorer


@click.command("combine-anomaly")
@click.option("--model", "model_paths", required=True, multiple=True, type=click.Path(path_type=Path),
              help="A trained scorer (give two or more, --map-only ones included).")
@click.option("--map-only", "map_only", multiple=True, type=click.Path(path_type=Path),
              help="A trained scorer whose map counts but not its image score (sharper outlines "
                   "from a model that decides worse).")
@click.option("--normal", "normal_dir", required=True, type=click.Path(path_type=Path),
              help="The folder the members were trained on (its val part sets the thresholds).")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path))
@click.option("--threads", type=int, default=1, show_default=True)
def combine_anomaly(model_paths: tuple[Path, ...], map_only: tuple[Path, ...], normal_dir: Path,
                    out_path: Path, threads: int) -> None:
    """An ensemble of trained scorers: maps and image scores divided by each member's
    threshold, averaged; thresholds set again from the val part of --normal."""
    import torch

    torch.set_num_threads(threads)
    combine(list(model_paths), normal_dir, out_path, map_only=list(map_only))


def member_arguments(options: str) -> list[str]:
    """One ``--member`` string as ``train-anomaly`` arguments; ``--normal``/``--out`` refused.

    >>> member_arguments("--kind draem --score-kernel 3")
    ['--kind', 'draem', '--score-kernel', '3']
    """
    try:
        words = shlex.split(options)
    except ValueError as exc:
        raise InputError(f"--member {options!r}: {exc}") from exc
    taken = [w for w in words if w.split("=")[0] in _RESERVED]
    if taken:
        raise InputError(f"--member {options!r}: {taken[0]} is set by train-ensemble for every member")
    return words


def resolve_auto_precision(words: list[str]) -> list[str]:
    """A member's ``--precision auto`` resolved once, here, before the members start: measured
    in each member as they start side by side, the probes would time each other. Other
    arguments come back unchanged."""
    if "auto" not in words and "--precision=auto" not in words:
        return words
    import torch

    from detection.cli_anomaly import _draem_training_precision, train_anomaly

    try:
        params = train_anomaly.make_context("train-anomaly", ["--normal", "-", "--out", "-", *words]).params
    except click.ClickException as exc:  # a member's own options, named as the member the user wrote
        raise InputError(f"--member {shlex.join(words)!r}: {exc.format_message()}") from exc
    if params["precision"] != "auto":
        return words
    threads = torch.get_num_threads()
    torch.set_num_threads(params["threads"])
    try:
        resolved = _draem_training_precision("auto", params["width"], params["crop_px"])
    finally:
        torch.set_num_threads(threads)
    out = [f"--precision={resolved}" if w == "--precision=auto" else w for w in words]
    return [resolved if w == "auto" and i and out[i - 1] == "--precision" else w for i, w in enumerate(out)]


def _run_members(commands: list[list[str]], logs: list[Path], parallel: int) -> list[float]:
    """Run the member commands, at most ``parallel`` at once; each one's wall seconds."""
    pending = list(range(len(commands)))
    running: dict[int, tuple[subprocess.Popen[bytes], float, Any]] = {}
    seconds = [0.0] * len(commands)
    try:
        while pending or running:
            while pending and len(running) < parallel:
                i = pending.pop(0)
                log = logs[i].open("wb")
                proc = subprocess.Popen(commands[i], stdout=log, stderr=subprocess.STDOUT)
                running[i] = (proc, time.monotonic(), log)
            time.sleep(0.2)
            for i, (proc, t0, log) in list(running.items()):
                if proc.poll() is None:
                    continue
                log.close()
                del running[i]
                seconds[i] = time.monotonic() - t0
                if proc.returncode != 0:
                    tail = logs[i].read_text(errors="replace").strip().splitlines()[-3:]
                    raise InputError(f"member {i + 1} failed (exit status {proc.returncode}): "
                                     + " | ".join(tail), source=str(logs[i]))
    finally:
        for proc, _, log in running.values():
            proc.kill()
            proc.wait()
            log.close()
    return seconds


@click.command("train-ensemble")
@click.option("--normal", "normal_dir", required=True, type=click.Path(path_type=Path),
              help="Folder of defect-free images (split train/val by coilmap.datasplit).")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path),
              help="Ensemble file to write (.pt); members are kept as <out>.member<i>.pt.")
@click.option("--member", "members", required=True, multiple=True,
              help='The train-anomaly options of one member, quoted, e.g. "--kind draem '
                   '--anomalies surface --score-kernel 3" (give two or more).')
@click.option("--parallel", type=click.IntRange(1, 64), default=None,
              help="Members trained at once (default: as many as the machine has cores, "
                   "at most the number of members).")
def train_ensemble(normal_dir: Path, out_path: Path, members: tuple[str, ...],
                   parallel: int | None) -> None:
    """Train anomaly scorers side by side on defect-free images and combine them."""
    if len(members) < 2:
        raise InputError("an ensemble needs at least two members (give --member twice or more)")
    arguments = [resolve_auto_precision(member_arguments(m)) for m in members]
    _split_normal(normal_dir)  # the folder's errors now, not after a member has failed on them
    out_path.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_path.with_name(f"{out_path.stem}.member{i + 1}.pt") for i in range(len(members))]
    logs = [p.with_suffix(".log") for p in paths]
    runner = [sys.executable, "-c", "from coilmap.cli import main; main()", "detect", "train-anomaly"]
    commands = [[*runner, "--normal", str(normal_dir), "--out", str(p), *a]
                for p, a in zip(paths, arguments, strict=True)]
    parallel = parallel or min(len(members), os.cpu_count() or 1)
    t0 = time.monotonic()
    click.echo(f"training {len(members)} members, {parallel} at once (logs: "
               + ", ".join(str(p) for p in logs) + ")", err=True)
    member_seconds = _run_members(commands, logs, parallel)
    wall_seconds = round(time.monotonic() - t0, 1)
    combine(paths, normal_dir, out_path, manifest_extra={
        "parallel": parallel,
        "member_wall_seconds": [round(s, 1) for s in member_seconds],
        "wall_seconds": wall_seconds,
        # side by side, the wall time is what training cost (the members' sum is in "members")
        "training_seconds": wall_seconds,
    })


COMMANDS = [combine_anomaly, train_ensemble]
