"""``coilmap fuse train | apply | evaluate``: the fused classifier on the coil model."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import numpy as np
import pandas as pd

from coilmap.errors import InputError

# Out of fold, at most this share of real-defect observations may be called pseudo by fusion.
REAL_LOSS = 0.02

_url = click.option(
    "--url", default=None, help="Coil model (default: COILMAP_DATABASE_URL or the SQLite file)."
)


def _engine(url: str | None):  # type: ignore[no-untyped-def]
    from coilmap import migrate
    from coilmap.db import make_engine
    from coilmap.errors import CoilmapError

    engine = make_engine(url)
    target = engine.url.render_as_string(hide_password=False)
    if migrate.current(target) != migrate.head():
        raise CoilmapError("the coil model is not at the newest revision: run `coilmap db upgrade` first")
    return engine


def read_labels(path: Path) -> pd.DataFrame:
    """``source_key,label`` (reviewed classes; ``pseudo`` for not-a-defect)."""
    if not path.is_file():
        raise InputError("no such labels file", source=str(path))
    try:
        labels = pd.read_csv(path, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"not a readable CSV ({exc})", source=str(path)) from None
    missing = {"source_key", "label"} - set(labels.columns)
    if missing:
        raise InputError(f"missing column(s) {', '.join(sorted(missing))}", source=str(path), line=1)
    from fusion.evidence import FUSION_CLASSES

    bad = ~labels["label"].isin(FUSION_CLASSES)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"unknown class {labels['label'].iloc[i]!r}; one of {', '.join(FUSION_CLASSES)}",
            source=str(path),
            line=i + 2,
            field="label",
        )
    return labels.drop_duplicates("source_key", keep="last")


def _labelled(table, labels: pd.DataFrame):  # type: ignore[no-untyped-def]
    by_key = dict(zip(labels["source_key"], labels["label"], strict=True))
    y = np.array([by_key.get(k, "") for k in table.source_key], dtype=object)
    sel = y != ""
    if sel.sum() < 10:
        raise InputError(
            f"only {int(sel.sum())} observations of the coil model have labels; need at least 10"
        )
    return sel, y


_real_loss = click.option(
    "--real-loss",
    default=REAL_LOSS,
    show_default=True,
    type=click.FloatRange(0.0, 1.0, max_open=True),
    help="Share of real-defect observations the pseudo threshold may call pseudo, out of fold "
    "(1 > x >= 0; the threshold is the lowest that keeps to it).",
)


@click.command("train")
@click.option("--labels", "labels_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--trained-on", default="", help="What the labelled data is, for the manifest (e.g. the plant and seed)."
)
@_real_loss
@_url
def train_cmd(labels_path: Path, out_path: Path, trained_on: str, real_loss: float, url: str | None) -> None:
    """Train the fused classifier on labelled observations of the coil model; its pseudo
    threshold is chosen by coil-grouped cross-validation (``--real-loss``)."""
    from fusion.db_features import build_features
    from fusion.evidence import FUSION_CLASSES, MatchTolerance
    from fusion.fused import FusedClassifier
    from fusion.model_file import FusedModel, new_version, save
    from fusion.proof import gain_report

    labels = read_labels(labels_path)
    engine = _engine(url)
    table, grades = build_features(engine, tolerance=MatchTolerance())
    sel, y = _labelled(table, labels)
    X, yy, groups = table.features[sel], y[sel], table.group[sel]
    own = [i for i, n in enumerate(table.names) if n.startswith("own_")]
    report = gain_report(
        X, yy, groups, table.station[sel], own_columns=own, classes=FUSION_CLASSES, real_loss=real_loss
    )
    estimator = FusedClassifier(pseudo_threshold=report.pseudo_threshold).fit(X, yy)
    version = new_version()
    manifest = {
        "version": version,
        "command": "coilmap " + " ".join(sys.argv[1:]),
        "trained_at": datetime.now(UTC).isoformat(),
        "database": engine.url.render_as_string(hide_password=True),
        "trained_on": trained_on or engine.url.render_as_string(hide_password=True),
        "labels": str(labels_path),
        "n_observations": int(sel.sum()),
        "n_hot_coils": int(len(set(groups.tolist()))),
        "label_counts": pd.Series(yy).value_counts().to_dict(),
        "grades": grades,
        "features": table.names,
        "real_loss": real_loss,
        "pseudo_threshold": report.pseudo_threshold,
        "coil_grouped_cv": report.table.to_dict(orient="records"),
    }
    save(FusedModel(estimator, table.names, grades, MatchTolerance(), manifest), out_path)
    click.echo(report.text())
    click.echo(f"fused model {version} ({int(sel.sum())} labelled observations) -> {out_path}")


@click.command("apply")
@click.option(
    "--model",
    "model_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Fused model (default: the project's default model).",
)
@_url
def apply_cmd(model_path: Path | None, url: str | None) -> None:
    """Fuse every observation of the coil model and store the decisions with their evidence."""
    from fusion.apply import apply_model
    from fusion.model_file import load

    model = load(model_path)
    n = apply_model(_engine(url), model)
    click.echo(f"fused {n} observations with {model.version}")


@click.command("evaluate")
@click.option("--labels", "labels_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--folds", default=5, show_default=True, type=click.IntRange(min=2))
@_real_loss
@_url
def evaluate_cmd(labels_path: Path, folds: int, real_loss: float, url: str | None) -> None:
    """Coil-grouped cross-validation: image-only against fused, per station."""
    labels = read_labels(labels_path)
    click.echo(gain_from_db(_engine(url), labels, n_splits=folds, real_loss=real_loss).text())


def gain_from_db(engine, labels: pd.DataFrame, *, n_splits: int = 5, real_loss: float | None = None):  # type: ignore[no-untyped-def]
    """The coil-grouped gain report of the labelled observations of the coil model: the image
    classifier's own argmax, the image-only refit and the fused classifier, per station."""
    from fusion.db_features import build_features
    from fusion.evidence import FUSION_CLASSES
    from fusion.proof import gain_report

    table, _ = build_features(engine)
    sel, y = _labelled(table, labels)
    own = [i for i, n in enumerate(table.names) if n.startswith("own_")]
    raw = np.array(
        [table.names[own[i]][4:] for i in np.argmax(table.features[sel][:, own], axis=1)], dtype=object
    )
    return gain_report(
        table.features[sel],
        y[sel],
        table.group[sel],
        table.station[sel],
        own_columns=own,
        classes=FUSION_CLASSES,
        raw_image=raw,
        n_splits=n_splits,
        real_loss=real_loss,
    )


COMMANDS = [train_cmd, apply_cmd, evaluate_cmd]
