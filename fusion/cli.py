"""``coilmap fuse ...`` and ``coilmap dataset ...``: the fusion area's thin command-line shell.

``fuse`` gathers the commands of other fusion modules too: every module in
:data:`FUSE_MODULES` that exists contributes its ``COMMANDS`` (the fused classifier's
``fusion/cli_fused.py``), so adding one is one line here.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import click

from coilmap.cli import add_module_commands
from coilmap.errors import InputError

FUSE_MODULES = ("fusion.cli_fused",)
# Typical work-roll diameters (mm) of the demo plant's rolling lines: a roll mark whose
# implied diameter falls outside its line's range cannot come from that line's work rolls.
DEFAULT_ROLL_DIAMETERS_MM = {"HSM": (600.0, 850.0), "TCM": (400.0, 600.0), "SPM": (400.0, 700.0)}
INDEX_ENV = "COILMAP_SEARCH_INDEX"


@click.group()
def fuse() -> None:
    """Fusion across stations: roll marks, upstream evidence, the fused classifier."""


@click.group()
def dataset() -> None:
    """Labelled image sets: audit, coil-grouped split, similar-image index and search."""


def _session():  # type: ignore[no-untyped-def]
    from coilmap.db import make_engine, session_factory

    return session_factory(make_engine())()


# --- fuse roll-marks -----------------------------------------------------------------------


def _diameter_ranges(values: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    out = dict(DEFAULT_ROLL_DIAMETERS_MM)
    for v in values:
        try:
            line, rng = v.split("=", 1)
            lo, hi = (float(p) for p in rng.split(":", 1))
        except ValueError:
            raise InputError(f"expected LINE=MIN:MAX in mm, got {v!r}", field="roll-diameter") from None
        if not 0 < lo < hi:
            raise InputError(f"need 0 < MIN < MAX, got {v!r}", field="roll-diameter")
        out[line] = (lo, hi)
    return out


@fuse.command("roll-marks")
@click.argument("piece_id")
@click.option("--class", "classes", multiple=True, help="Plant class(es) to search (default: each class).")
@click.option("--side", type=click.Choice(["top", "bottom"]), default=None, help="Default: each side.")
@click.option("--min-period-mm", default=300.0, show_default=True, type=float)
@click.option("--max-period-mm", default=10_000.0, show_default=True, type=float)
@click.option("--tol-mm", default=20.0, show_default=True, type=float, help="Position tolerance of a pair.")
@click.option("--rel-tol", default=0.02, show_default=True, type=float, help="Period drift per revolution.")
@click.option("--y-tol-mm", default=30.0, show_default=True, type=float, help="Scatter across the width.")
@click.option("--min-marks", default=4, show_default=True, type=click.IntRange(3))
@click.option(
    "--n-null", default=99, show_default=True, type=click.IntRange(9), help="Shuffled-position sets."
)
@click.option("--alpha", default=0.01, show_default=True, type=float)
@click.option(
    "--roll-diameter",
    "roll_diameters",
    multiple=True,
    help="LINE=MIN:MAX work-roll diameters in mm (defaults: HSM=600:850, TCM=400:600, SPM=400:700).",
)
@click.option(
    "--pool-classes",
    is_flag=True,
    help="Search all classes together (a roll whose marks the stations classify inconsistently).",
)
@click.option("--csv", "as_csv", is_flag=True, help="CSV, one row per series and candidate roll.")
def roll_marks(
    piece_id: str,
    classes: tuple[str, ...],
    side: str | None,
    min_period_mm: float,
    max_period_mm: float,
    tol_mm: float,
    rel_tol: float,
    y_tol_mm: float,
    min_marks: int,
    n_null: int,
    alpha: float,
    roll_diameters: tuple[str, ...],
    pool_classes: bool,
    as_csv: bool,
) -> None:
    """Periodic defect series on PIECE_ID (and what its ancestors' stations saw there), the
    period, and the upstream line and roll diameter each points to."""
    import numpy as np

    from fusion.roll_marks import find_roll_marks, trace_roll
    from tracking.coil_map import build_coil_map

    ranges = _diameter_ranges(roll_diameters)
    with _session() as session:
        cm = build_coil_map(piece_id, session=session)
    obs = cm.observations
    obs = obs[(obs["status"] == "kept") & obs["plant_class"].notna()]
    if classes:
        obs = obs[obs["plant_class"].isin(classes)]
    if side:
        obs = obs[obs["side"] == side]
    search = dict(
        min_period_mm=min_period_mm,
        max_period_mm=max_period_mm,
        tol_mm=tol_mm,
        rel_tol=rel_tol,
        y_tol_mm=y_tol_mm,
        min_members=min_marks,
        n_null=n_null,
        alpha=alpha,
    )
    writer = csv.writer(sys.stdout, lineterminator="\n")
    if as_csv:
        writer.writerow(
            [
                "class", "side", "frame", "period_mm", "n_marks", "n_missing", "x_first_mm", "x_last_mm",
                "y_mm", "p_value", "candidate_piece", "candidate_line", "candidate_period_mm",
                "roll_diameter_mm", "plausible", "residual_mm", "observation_ids",
            ]
        )  # fmt: skip
    n_found = 0
    if pool_classes:
        obs = obs.assign(plant_class="(any class)")
    for (cls, sd), group in obs.groupby(["plant_class", "side"], sort=True):
        if len(group) < min_marks:
            continue
        x = group["x_mm"].to_numpy(dtype=float)
        y = group["y_mm"].to_numpy(dtype=float)
        for frame, s in find_roll_marks(x, y, cm.genealogy, piece_id, **search):
            n_found += 1
            members = s.members
            cands = trace_roll(
                x[members],
                s.repeat_index,
                cm.genealogy,
                piece_id,
                member_y_mm=y[members],
                roll_diameters_mm=ranges,
            )
            ids = " ".join(str(v) for v in group["observation_id"].to_numpy()[members])
            if as_csv:
                series = [cls, sd, frame, f"{s.period_mm:.1f}", len(members), s.n_missing]
                series += [f"{x[members].min():.0f}", f"{x[members].max():.0f}"]
                series += [f"{np.median(y[members]):.0f}", f"{s.p_value:.3f}"]
                for c in cands:
                    roll = [c.piece_id, c.line or "", f"{c.period_mm:.1f}", f"{c.roll_diameter_mm:.1f}"]
                    roll += ["" if c.plausible is None else c.plausible, f"{c.residual_mm:.1f}", ids]
                    writer.writerow(series + roll)
                continue
            x0, x1, y_med = x[members].min(), x[members].max(), np.median(y[members])
            click.echo(
                f"{cls}, {sd}: {len(members)} marks ({s.n_missing} missing) at x {x0:,.0f}..{x1:,.0f} mm, "
                f"y {y_med:,.0f} mm on {piece_id}; period {s.period_mm:,.1f} mm in the frame of {frame}; "
                f"p = {s.p_value:.3f}"
            )
            for i, c in enumerate(cands):
                verdict = {True: "plausible", False: "implausible", None: "no range"}[c.plausible]
                best = "->" if i == 0 else "  "
                click.echo(
                    f"  {best} {c.line or '?':<5} {c.piece_id:<14} period {c.period_mm:9,.1f} mm  roll "
                    f"diameter {c.roll_diameter_mm:7,.1f} mm ({verdict}), scatter {c.residual_mm:6.1f} mm"
                )
            click.echo(f"     observations: {ids}")
            if len(s.also_seen):
                also = " ".join(str(v) for v in group["observation_id"].to_numpy()[s.also_seen])
                click.echo(f"     also seen by other stations: {also}")
    if not as_csv and n_found == 0:
        click.echo(f"no periodic series on {piece_id} ({len(obs)} observations searched)")


# --- dataset audit / split -------------------------------------------------------------------


def _load(source: str):  # type: ignore[no-untyped-def]
    from fusion.image_table import load_table

    if source == "db":
        with _session() as session:
            return load_table(source, session=session)
    return load_table(source)


@dataset.command("audit")
@click.argument("source")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report as JSON (the dashboard reads COILMAP_AUDIT_REPORT).")  # fmt: skip
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report as a static HTML page.")  # fmt: skip
@click.option("--permutations", default=99, show_default=True, type=click.IntRange(9, 10_000))
@click.option("--alpha", default=0.01, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int)
def audit_cmd(
    source: str, json_path: Path | None, html_path: Path | None, permutations: int, alpha: float, seed: int
) -> None:
    """Audit a labelled image set: SOURCE is an image folder (NEU or a folder per class), a CSV
    (path,label,coil,grade,line,station,time[,split]) or 'db' (the coil model)."""
    from datetime import UTC, datetime

    from fusion.audit import audit, render_html, render_text

    table = _load(source)
    report = audit(table, source=source, n_permutations=permutations, alpha=alpha, seed=seed)
    report["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    click.echo(render_text(report), nl=False)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        click.echo(f"wrote {json_path}")
    if html_path:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(render_html(report))
        click.echo(f"wrote {html_path}")


@dataset.command("split")
@click.argument("source")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--test", "test_fraction", default=0.2, show_default=True, type=float)
@click.option("--val", "val_fraction", default=0.1, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int)
def split_cmd(source: str, out_path: Path, test_fraction: float, val_fraction: float, seed: int) -> None:
    """Write SOURCE's images as CSV with a coil-grouped, class-stratified split column."""
    from fusion.split import grouped_split

    table = _load(source)
    if "coil" not in table or table["coil"].isna().all():
        click.echo("warning: no coil column: each image is its own group", err=True)
        groups = table["path"]
    else:
        groups = table["coil"].fillna(table["path"])
    table["split"] = grouped_split(
        table["label"], groups, test_fraction=test_fraction, val_fraction=val_fraction, seed=seed
    )
    order = ("path", "label", "coil", "grade", "line", "station", "time", "split", "observation_id")
    cols = [c for c in order if c in table]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    table[cols].to_csv(out_path, index=False)
    counts = table["split"].value_counts()
    click.echo(
        f"wrote {out_path}: "
        + ", ".join(f"{p} {counts.get(p, 0)}" for p in ("train", "val", "test"))
        + f" images; {groups.nunique()} groups, none in two parts"
    )


# --- dataset index / search ----------------------------------------------------------------


@dataset.command("index")
@click.argument("source")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--embedder", type=click.Choice(["classifier", "thumbnail"]), default="classifier", show_default=True
)
@click.option("--model", "model_path", default=None, help="Classifier model file (default: the NEU model).")
@click.option(
    "--parts",
    default="train,val,test",
    show_default=True,
    help="Parts to index of a table with a split (NEU 'render' images are the demo plant's).",
)
def index_cmd(source: str, out_dir: Path, embedder: str, model_path: str | None, parts: str) -> None:
    """Embed SOURCE's images (folder, CSV or 'db') and write a similar-image index to --out."""
    import time

    from fusion.embeddings import embed_files, make_embedder
    from fusion.search import SimilarityIndex

    table = _load(source)
    no_image = table["path"].isna()
    if no_image.any():
        click.echo(f"{int(no_image.sum())} rows without an image are not indexed", err=True)
        table = table[~no_image]
    if table.empty:
        raise InputError("no images to index", source=source)
    if "split" in table:
        table = table[table["split"].isna() | table["split"].isin(parts.split(","))]
    table = table.reset_index(drop=True)
    if "observation_id" in table:
        table["id"] = table["observation_id"].astype(str)
    else:
        table["path"] = [str(Path(p).resolve()) for p in table["path"]]
        table["id"] = table["path"]
    emb = make_embedder(embedder, model_path)
    t = time.perf_counter()
    files = table["path"].tolist()
    if source == "db":
        # The coil model stores image references relative to the image root; the index keeps
        # them as stored (the dashboard resolves them the same way).
        root = _image_root()
        files = [p if Path(p).is_absolute() else str(root / p) for p in files]
    vectors = embed_files(files, emb)
    index = SimilarityIndex().fit(vectors, table)
    index.save(out_dir, {"embedder": emb.name, "model": model_path, "source": source})
    click.echo(
        f"indexed {len(index)} images ({emb.name}, {emb.dim} dims, {index.kind_}) in "
        f"{time.perf_counter() - t:.1f} s -> {out_dir}"
    )


def _when(value: str | None, field: str):  # type: ignore[no-untyped-def]
    import pandas as pd

    if value is None:
        return None
    try:
        return (
            pd.Timestamp(value).tz_localize("UTC")
            if pd.Timestamp(value).tzinfo is None
            else pd.Timestamp(value)
        )
    except ValueError:
        raise InputError(f"not a date/time: {value!r}", field=field) from None


@dataset.command("search")
@click.option("--index", "index_dir", default=None, help=f"Index folder (default: ${INDEX_ENV}).")
@click.option("--image", "image_path", type=click.Path(dir_okay=False), default=None)
@click.option("--observation", "observation_id", type=int, default=None)
@click.option("--class", "classes", multiple=True)
@click.option("--grade", "grades", multiple=True)
@click.option("--line", "lines", multiple=True)
@click.option("--station", "stations", multiple=True)
@click.option("--since", default=None, help="Production period start (ISO date/time, UTC).")
@click.option("--until", default=None, help="Production period end, exclusive.")
@click.option("-k", "k", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--model", "model_path", default=None, help="The classifier the index was built with.")
def search_cmd(
    index_dir: str | None,
    image_path: str | None,
    observation_id: int | None,
    classes: tuple[str, ...],
    grades: tuple[str, ...],
    lines: tuple[str, ...],
    stations: tuple[str, ...],
    since: str | None,
    until: str | None,
    k: int,
    model_path: str | None,
) -> None:
    """The K indexed defect images most like an image file or an observation, as CSV."""
    from fusion.embeddings import embedder_for_index
    from fusion.search import META_COLUMNS, Filters, SimilarityIndex

    if (image_path is None) == (observation_id is None):
        raise InputError("give exactly one of --image and --observation")
    folder = index_dir or os.environ.get(INDEX_ENV)
    if not folder:
        raise InputError(f"no index: pass --index or set {INDEX_ENV}", field="index")
    index, info = SimilarityIndex.load(folder)
    exclude: list[int] = []
    if observation_id is not None and index.row_of(str(observation_id)) is not None:
        row = index.row_of(str(observation_id))
        query = index.vector(row)[None, :]  # type: ignore[arg-type]
        exclude = [row]  # type: ignore[list-item]
    else:
        from detection.images import load_gray

        if observation_id is not None:
            image_path = _observation_image(observation_id)
        emb = embedder_for_index(info.get("embedder", ""), model_path or info.get("model"))
        query = emb.embed([load_gray(image_path)])  # type: ignore[arg-type]
        same = index.row_of(str(Path(image_path).resolve())) if image_path else None  # type: ignore[arg-type]
        exclude = [same] if same is not None else []
    filters = Filters(
        classes=classes,
        grades=grades,
        lines=lines,
        stations=stations,
        since=_when(since, "since"),
        until=_when(until, "until"),
    )
    hits = index.search(query, k=k, filters=filters, exclude_rows=[exclude])
    cols = ["rank", "score", *META_COLUMNS]
    hits[cols].to_csv(sys.stdout, index=False)
    if hits.empty:
        click.echo("no indexed image passes the filters", err=True)


def _image_root() -> Path:
    """Where the coil model's image references point: ``COILMAP_IMAGE_ROOT``, else ``images/``
    beside the SQLite file, else ``images/`` here (the dashboard's rule)."""
    from dashboard.settings import image_root

    return image_root()


def _observation_image(observation_id: int) -> str:
    from coilmap import models as m
    from coilmap.errors import NotFoundError

    with _session() as session:
        ref = session.get(m.Observation, observation_id)
        if ref is None:
            raise NotFoundError(f"no observation {observation_id} in the coil model")
        if not ref.image_ref:
            raise InputError(f"observation {observation_id} has no image", field="image_ref")
        path = Path(ref.image_ref)
        return str(path if path.is_absolute() else _image_root() / path)


# --- other fusion modules' commands --------------------------------------------------------

add_module_commands(fuse, FUSE_MODULES)
