"""What each export file of a station becomes: observations, mark sightings, quarantine.

Units (one row each in the manifest ``ingestion_files``):

- ``defects*.csv`` (SurfSpec) and ``*.sqlite`` (InspeX): a vendor defect table;
- ``frames/<name>.png`` with its sidecar ``frames/<name>.json``: one frame for detection;
- ``marks.csv``: the reference marks the station saw (stored as mark sightings).

``edges.csv`` and ``marks.csv`` are also read, as they are now, to register positions. Every
unit is processed inside the batch's transaction; file I/O and computation come first and the
database writes last, so an error in between leaves nothing of the file behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from sqlalchemy.orm import Session

from coilmap import models as m
from coilmap.errors import InputError
from ingestion import store as st
from ingestion.config import MODELS_DIR, PlantConfig, StationConfig
from ingestion.register import register
from ingestion.tables import BadRecord, read_inspex_sqlite, read_surfspec_csv, source_keys, validate_rows

REFERENCE_FILES = ("marks.csv", "edges.csv")
# The first that exists is the default anomaly scorer: the project's default (the file of
# ``detection.anomaly.DEFAULT_MODEL``, named here because importing that imports torch), else
# the SSIM autoencoder.
DEFAULT_ANOMALY_MODELS = (MODELS_DIR / "mt_anomaly.pt", MODELS_DIR / "mt_anomaly_ssim_ae.pt")
DEFAULT_CLASSIFIER_MODEL = MODELS_DIR / "neu_classifier.pt"
IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".lock", "-journal", "-wal", "-shm")


@dataclass
class UnitOutcome:
    n_files: int = 0
    n_observations: int = 0
    n_skipped: int = 0
    n_quarantined: int = 0
    n_pending: int = 0


@dataclass
class StationContext:
    """What a run knows about its station; reference tables are read once per run."""

    cfg: PlantConfig
    station: StationConfig
    station_id: int
    run_id: int
    detector: Any = None
    errors: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    n_tiles: int = 0
    _tables: dict[str, pd.DataFrame | None] = field(default_factory=dict)
    _marks_true: dict[str, dict[str, float]] = field(default_factory=dict)

    def tick(self, name: str, t0: float) -> float:
        t1 = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + t1 - t0
        return t1

    def reference(self, name: str) -> pd.DataFrame | None:
        """``marks.csv`` / ``edges.csv`` of the station (None when missing or unreadable)."""
        if name not in self._tables:
            path = self.station.folder / name
            try:
                df = pd.read_csv(path)
                need = {
                    "marks.csv": ("piece", "mark_id", "x_obs_mm"),
                    "edges.csv": ("piece", "x_obs_mm", "os_edge_mm", "ds_edge_mm"),
                }[name]
                self._tables[name] = df if all(c in df.columns for c in need) else None
            except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
                self._tables[name] = None
        return self._tables[name]

    def detector_(self) -> Any:
        """The frame detector: given, configured (the station's own model files, else
        [detector]'s) or the project's default models (``detection/default_models``)."""
        if self.detector is None:
            t0 = time.perf_counter()
            from detection.worker import load_detector  # imports torch: part of loading

            a = self.station.anomaly_model or self.cfg.anomaly_model
            c = self.station.classifier_model or self.cfg.classifier_model
            if a is None:
                a = next((p for p in DEFAULT_ANOMALY_MODELS if p.is_file()), DEFAULT_ANOMALY_MODELS[0])
            # A configured scorer without a configured classifier still gets the default one:
            # a frame station's own scorer is no reason to lose the classes.
            c = c or (DEFAULT_CLASSIFIER_MODEL if DEFAULT_CLASSIFIER_MODEL.is_file() else None)
            if not Path(a).is_file():
                raise InputError(
                    f"no anomaly model at {a}: train one (`coilmap detect train-anomaly`) or set "
                    "[detector] anomaly_model in the configuration"
                )
            self.detector = load_detector(a, c, workers=self.cfg.scoring_workers)
            self.tick("detect:load models", t0)
        return self.detector


# --- scanning -------------------------------------------------------------------------------


def _kind(rel: str) -> str:
    if rel.startswith("frames/"):
        return "frame"
    if rel == "marks.csv":
        return "marks"
    return "table"


def scan_units(
    stc: StationConfig, *, settle_s: float, now_s: float | None = None
) -> tuple[list[st.FileStat], int]:
    """The station's export units as they are on disk, and how many were left out because a
    file of theirs changed less than ``settle_s`` ago (probably still being written)."""
    now_s = time.time() if now_s is None else now_s
    folder = stc.folder
    if not folder.is_dir():
        raise InputError("the station's export folder does not exist", source=str(folder))
    groups: dict[str, list[os.stat_result]] = {}

    def add(rel: str, path: Path) -> None:
        try:
            groups.setdefault(rel, []).append(path.stat())
        except FileNotFoundError:
            pass

    if (folder / "marks.csv").is_file():
        add("marks.csv", folder / "marks.csv")
    if stc.export in ("csv_table", "sqlite_table"):
        suffixes = (".csv",) if stc.export == "csv_table" else (".sqlite", ".db")
        for p in sorted(folder.iterdir()):
            if (
                p.is_file()
                and p.suffix.lower() in suffixes
                and p.name not in REFERENCE_FILES
                and not p.name.startswith(".")
            ):
                add(p.name, p)
    else:
        fdir = folder / "frames"
        if fdir.is_dir():
            for p in sorted(fdir.iterdir()):
                if p.name.startswith(".") or p.name.endswith(IGNORED_SUFFIXES):
                    continue
                if p.suffix.lower() in (".png", ".json"):
                    add(f"frames/{p.stem}.png", p)
    units, unsettled = [], 0
    for rel, stats in groups.items():
        newest = max(s.st_mtime_ns for s in stats)
        if now_s - newest / 1e9 < settle_s:
            unsettled += 1
            continue
        units.append(st.FileStat(rel, sum(s.st_size for s in stats), newest))
    return units, unsettled


# --- dispatch -------------------------------------------------------------------------------


def process_unit(ctx: StationContext, f: m.IngestionFile, *, session: Session) -> UnitOutcome:
    kind = _kind(f.path)
    if kind == "frame":
        return _process_frame(ctx, f, session)
    if kind == "marks":
        return _process_marks(ctx, f, session)
    return _process_table(ctx, f, session)


def _quarantine_file(
    ctx: StationContext,
    f: m.IngestionFile,
    session: Session,
    kind: str,
    reason: str,
    field_: str | None = None,
) -> UnitOutcome:
    key = f"file:{ctx.station.code}:{f.path}@{f.mtime_ns}"
    st.quarantine(
        [st.Quarantine(f.path, kind, reason, field=field_, source_key=key)],
        run_id=ctx.run_id,
        station_id=ctx.station_id,
        session=session,
    )
    st.clear_file_pending(f.id, session=session)
    st.mark_file(f.id, session=session, state=st.QUARANTINED, run_id=ctx.run_id, error=reason)
    return UnitOutcome(n_files=1, n_quarantined=1)


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        s = path.stat()
    except FileNotFoundError:
        return None
    return s.st_size, s.st_mtime_ns


# --- waiting for a piece --------------------------------------------------------------------


def _wait_or_give_up(
    ctx: StationContext, f: m.IngestionFile, session: Session, waiting: list[tuple[str, str, str, int | None]]
) -> tuple[int, int]:
    """Records ``(source_key, piece, reason, line_no)`` that cannot be stored yet: pending,
    or quarantined once they waited longer than the grace period. Returns (pending,
    quarantined)."""
    since = st.pending_since([w[0] for w in waiting], session=session) if waiting else {}
    st.clear_file_pending(f.id, session=session)
    if not waiting:
        return 0, 0
    now = datetime.now(UTC)
    grace = ctx.cfg.pending_grace_s
    expired = [w for w in waiting if w[0] in since and (now - since[w[0]]).total_seconds() >= grace]
    keep = [w for w in waiting if not (w[0] in since and (now - since[w[0]]).total_seconds() >= grace)]
    if expired:
        st.quarantine(
            [
                st.Quarantine(
                    f.path,
                    "unknown_piece" if "no piece" in w[2] else "no_marks",
                    f"{w[2]} (waited {grace:g} s)",
                    line_no=w[3],
                    field="piece",
                    source_key=w[0],
                )
                for w in expired
            ],
            run_id=ctx.run_id,
            station_id=ctx.station_id,
            session=session,
        )
    if keep:
        rows = [(k, p, r, since.get(k, now)) for k, p, r, _ in keep]
        st.set_pending(rows, station_id=ctx.station_id, file_id=f.id, session=session)
    return len(keep), len(expired)


# --- registration ---------------------------------------------------------------------------


def _true_marks(ctx: StationContext, piece: str, session: Session) -> dict[str, float]:
    if piece not in ctx._marks_true:
        from tracking.store import load_genealogy

        g = load_genealogy(piece, session=session, descendants=False)
        ctx._marks_true[piece] = {mk.mark_id: mk.x_mm for mk in g.marks(piece)}
    return ctx._marks_true[piece]


def _piece_registration(
    ctx: StationContext, piece: str, session: Session
) -> tuple[dict[str, Any] | None, str]:
    """The station's mark sightings and edges on ``piece`` (None and why when it cannot
    register yet)."""
    marks = ctx.reference("marks.csv")
    if marks is None:
        return None, f"the station's marks.csv is missing or unreadable; piece {piece} cannot be registered"
    seen = marks[marks["piece"].astype(str) == piece]
    true = _true_marks(ctx, piece, session)
    seen = seen[seen["mark_id"].astype(str).isin(list(true))]
    x_obs = pd.to_numeric(seen["x_obs_mm"], errors="coerce").to_numpy(np.float64)
    ok = np.isfinite(x_obs)
    if not ok.any():
        return None, f"no reference mark of piece {piece} seen by station {ctx.station.code} yet"
    edges = ctx.reference("edges.csv")
    e = edges[edges["piece"].astype(str) == piece] if edges is not None else None

    def col(name: str) -> np.ndarray:
        return np.zeros(0) if e is None else pd.to_numeric(e[name], errors="coerce").to_numpy(np.float64)

    ex, eo, ed = col("x_obs_mm"), col("os_edge_mm"), col("ds_edge_mm")
    good = np.isfinite(ex) & np.isfinite(eo) & np.isfinite(ed)
    return {
        "marks_obs_mm": x_obs[ok],
        "marks_true_mm": np.array([true[k] for k in seen["mark_id"].astype(str)])[ok],
        "edge_x_obs_mm": ex[good],
        "edge_os_mm": eo[good],
        "edge_ds_mm": ed[good],
    }, ""


# --- vendor tables ----------------------------------------------------------------------------


def _process_table(ctx: StationContext, f: m.IngestionFile, session: Session) -> UnitOutcome:
    stc = ctx.station
    path = stc.folder / f.path
    t0 = time.perf_counter()
    stat = _stat(path)
    if stat is None:
        return _quarantine_file(ctx, f, session, "missing_file", "the file disappeared before it was read")
    try:
        df = read_surfspec_csv(path) if stc.export == "csv_table" else read_inspex_sqlite(path)
    except InputError as exc:
        return _quarantine_file(ctx, f, session, "bad_table", str(exc), exc.field)
    t0 = ctx.tick("read", t0)
    good, bad = validate_rows(df, station=stc.code, side=stc.side, label_map=stc.label_map)
    t0 = ctx.tick("validate", t0)
    q = [_bad(f.path, b) for b in bad]
    n = len(good["record_no"])
    keys = np.asarray(source_keys(stc.code, good["record_no"]), dtype=object)
    pieces = good["piece"]
    known = st.piece_rows(np.unique(pieces.astype(str)).tolist() if n else [], session=session)
    out = {k: np.full(n, np.nan) for k in ("x_mm", "y_mm", "x0_mm", "y0_mm", "x1_mm", "y1_mm")}
    piece_key = np.zeros(n, dtype=np.int64)
    store = np.zeros(n, dtype=bool)
    waiting: list[tuple[str, str, str, int | None]] = []
    order = np.argsort(pieces.astype(str), kind="stable") if n else np.zeros(0, np.int64)
    sorted_pieces = pieces[order].astype(str) if n else np.zeros(0, object)
    starts = (
        np.flatnonzero(np.r_[True, sorted_pieces[1:] != sorted_pieces[:-1]]) if n else np.zeros(0, np.int64)
    )
    bounds = np.r_[starts, n]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        idx = order[a:b]
        piece = str(sorted_pieces[a])
        if piece not in known:
            why = f"no piece {piece} in the coil model yet (tracking events not imported?)"
            waiting += [(keys[i], piece, why, int(good["line_no"][i])) for i in idx]
            continue
        reg_in, why = _piece_registration(ctx, piece, session)
        if reg_in is None:
            waiting += [(keys[i], piece, why, int(good["line_no"][i])) for i in idx]
            continue
        key, length, width = known[piece]
        try:
            r = register(
                good["x_obs_mm"][idx],
                good["y_obs_mm"][idx],
                good["length_mm"][idx],
                good["width_mm"][idx],
                **reg_in,
                y_axis_toward=stc.y_axis_toward,
                length_mm=length,
                width_mm=width,
                tolerance_mm=ctx.cfg.position_tolerance_mm,
            )
        except InputError as exc:
            q += [
                st.Quarantine(
                    f.path, "no_marks", f"piece {piece}: {exc}", int(good["line_no"][i]), "x_obs_mm", keys[i]
                )
                for i in idx
            ]
            continue
        for name in out:
            out[name][idx] = getattr(r, name)
        piece_key[idx] = key
        store[idx] = ~r.beyond
        q += [
            st.Quarantine(
                f.path,
                "beyond_piece",
                f"position x_obs {good['x_obs_mm'][i]:g} mm, y_obs {good['y_obs_mm'][i]:g} mm lies "
                f"beyond piece {piece} ({length:g} x {width:g} mm) after registration",
                int(good["line_no"][i]),
                "x_obs_mm",
                keys[i],
            )
            for i in idx[r.beyond]
        ]
    t0 = ctx.tick("register", t0)
    image_ref = np.full(n, None, dtype=object)
    for i in np.flatnonzero(store & (good["roi"] != "")):
        ref, problem = _copy_roi(ctx, str(good["roi"][i]))
        if problem:
            q.append(
                st.Quarantine(
                    f.path,
                    problem[0],
                    f"ROI image {good['roi'][i]}: {problem[1]}",
                    int(good["line_no"][i]),
                    "roi",
                    f"{keys[i]}:roi",
                )
            )
        image_ref[i] = ref
    t0 = ctx.tick("images", t0)
    sel = np.flatnonzero(store)
    # In the coil map's index order: inserts then touch index pages (and parent rows) in turn.
    sel = sel[np.lexsort((out["x_mm"][sel], piece_key[sel]))]
    stored = st.store_observations(
        {
            "station_id": ctx.station_id,
            "piece_id": piece_key[sel],
            "side": stc.side,
            **{k: v[sel] for k, v in out.items()},
            "x_obs_mm": good["x_obs_mm"][sel],
            "station_label": good["station_label"][sel],
            "station_confidence": good["station_confidence"][sel],
            "plant_class": good["plant_class"][sel],
            "image_ref": image_ref[sel],
            "observed_at": good["observed_at"][sel],
            "source_key": keys[sel],
            "ingestion_run_id": ctx.run_id,
        },
        session=session,
    )
    t0 = ctx.tick("store", t0)
    _store_sightings(
        ctx, {p for p in np.unique(pieces[sel].astype(str)).tolist()} if len(sel) else set(), known, session
    )
    n_q = st.quarantine(q, run_id=ctx.run_id, station_id=ctx.station_id, session=session) if q else 0
    n_pending, n_expired = _wait_or_give_up(ctx, f, session, waiting)
    st.mark_file(
        f.id,
        session=session,
        state=st.PENDING if n_pending else st.DONE,
        run_id=ctx.run_id,
        size_bytes=stat[0],
        mtime_ns=stat[1],
        n_observations=stored,
        retry_after_s=stc.interval_s if n_pending else None,
    )
    ctx.tick("store", t0)
    return UnitOutcome(n_files=1, n_observations=stored, n_quarantined=n_q + n_expired, n_pending=n_pending)


def _bad(path: str, b: BadRecord) -> st.Quarantine:
    return st.Quarantine(path, b.kind, b.reason, b.line_no, b.field, b.source_key)


def _store_file(target: Path, data_from: Path | None = None, image01: np.ndarray | None = None) -> None:
    """Write atomically (temporary file, then rename): a crash never leaves half a file, and
    a rerun rewrites the same bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    if data_from is not None:
        shutil.copyfile(data_from, tmp)
    else:
        arr = np.clip(np.rint(np.asarray(image01) * 255.0), 0, 255).astype(np.uint8)
        Image.fromarray(arr, mode="L").save(tmp, format="PNG", compress_level=1)
    os.replace(tmp, target)


def _copy_roi(ctx: StationContext, roi: str) -> tuple[str | None, tuple[str, str] | None]:
    """Copy a ROI image into the image store; its relative path, or a problem."""
    from detection.images import load_gray

    src = (ctx.station.folder / roi).resolve()
    if ctx.station.folder.resolve() not in src.parents:
        return None, ("bad_value", "path leaves the station's folder")
    if not src.is_file():
        return None, ("missing_image", "no such file")
    ref = f"{ctx.station.code}/{Path(roi).as_posix()}"
    target = ctx.cfg.resolved_image_root() / ref
    if target.is_file() and target.stat().st_size == src.stat().st_size:
        return ref, None
    try:
        load_gray(src)  # decodes the whole image: a truncated file fails here
    except InputError as exc:
        return None, ("corrupt_image", exc.message)
    _store_file(target, data_from=src)
    return ref, None


def _store_sightings(
    ctx: StationContext, pieces: set[str], known: dict[str, tuple[int, float, float]], session: Session
) -> int:
    marks = ctx.reference("marks.csv")
    if marks is None or not pieces:
        return 0
    sel = marks[marks["piece"].astype(str).isin(sorted(pieces))]
    x = pd.to_numeric(sel["x_obs_mm"], errors="coerce")
    t = pd.to_datetime(sel["time"], utc=True, errors="coerce", format="ISO8601") if "time" in sel else None
    rows = []
    for i, (piece, mark_id, xv) in enumerate(
        zip(sel["piece"].astype(str), sel["mark_id"].astype(str), x, strict=True)
    ):
        if piece not in known or not math.isfinite(xv):
            continue
        seen_at = t.iloc[i] if t is not None and not pd.isna(t.iloc[i]) else datetime.now(UTC)
        rows.append(
            {
                "station_id": ctx.station_id,
                "piece_id": known[piece][0],
                "mark_id": mark_id[:128],
                "x_obs_mm": float(xv),
                "seen_at": seen_at.to_pydatetime() if hasattr(seen_at, "to_pydatetime") else seen_at,
                "source_key": f"{ctx.station.code}:{piece}:{mark_id}"[:255],
                "ingestion_run_id": ctx.run_id,
            }
        )
    return st.store_mark_sightings(rows, session=session)


# --- marks.csv ------------------------------------------------------------------------------


def _process_marks(ctx: StationContext, f: m.IngestionFile, session: Session) -> UnitOutcome:
    """Store the station's mark sightings of known pieces; the others wait for their piece."""
    path = ctx.station.folder / f.path
    stat = _stat(path)
    if stat is None:
        return _quarantine_file(ctx, f, session, "missing_file", "the file disappeared before it was read")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        return _quarantine_file(ctx, f, session, "bad_table", f"not a readable CSV ({exc})")
    missing = [c for c in ("piece", "mark_id", "x_obs_mm") if c not in df.columns]
    if missing:
        return _quarantine_file(ctx, f, session, "bad_table", f"missing columns {missing}", missing[0])
    x = pd.to_numeric(df["x_obs_mm"], errors="coerce").to_numpy(np.float64)
    q = [
        st.Quarantine(
            f.path,
            "bad_value",
            f"x_obs_mm must be a finite number, got {df['x_obs_mm'].iloc[i]!r}",
            int(i) + 2,
            "x_obs_mm",
            f"{ctx.station.code}:{df['piece'].iloc[i]}:{df['mark_id'].iloc[i]}",
        )
        for i in np.flatnonzero(~np.isfinite(x))
    ]
    pieces = set(df["piece"].astype(str)[np.isfinite(x)])
    known = st.piece_rows(pieces, session=session)
    n = _store_sightings(ctx, pieces & set(known), known, session)
    waiting = [
        (f"{ctx.station.code}:{p}:{k}", p, f"no piece {p} in the coil model yet (mark sighting)", int(i) + 2)
        for i, (p, k) in enumerate(zip(df["piece"].astype(str), df["mark_id"].astype(str), strict=True))
        if p not in known and np.isfinite(x[i])
    ]
    n_q = st.quarantine(q, run_id=ctx.run_id, station_id=ctx.station_id, session=session) if q else 0
    n_pending, n_expired = _wait_or_give_up(ctx, f, session, waiting)
    st.mark_file(
        f.id,
        session=session,
        state=st.PENDING if n_pending else st.DONE,
        run_id=ctx.run_id,
        size_bytes=stat[0],
        mtime_ns=stat[1],
        retry_after_s=ctx.station.interval_s if n_pending else None,
    )
    del n
    return UnitOutcome(n_files=1, n_quarantined=n_q + n_expired, n_pending=n_pending)


# --- frames ---------------------------------------------------------------------------------

SIDECAR_NUMBERS = ("x0_obs_mm", "y0_cam_mm", "mm_per_px_x", "mm_per_px_y", "rows", "cols")


def check_sidecar(d: Any, stc: StationConfig) -> dict[str, Any]:
    """The sidecar's fields, or an :class:`InputError` naming the field (``kind`` set)."""

    def bad(kind: str, field_: str, why: str) -> InputError:
        err = InputError(why, field=field_)
        err.kind = kind  # type: ignore[attr-defined]
        return err

    if not isinstance(d, dict):
        raise bad("bad_sidecar", "", "the sidecar is not a JSON object")
    for name in ("piece", *SIDECAR_NUMBERS):
        if name not in d:
            raise bad("bad_sidecar", name, "missing")
    for name in SIDECAR_NUMBERS:
        v = d[name]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise bad("bad_value", name, f"must be a finite number, got {v!r}")
    if not isinstance(d["piece"], str) or not d["piece"].strip():
        raise bad("bad_sidecar", "piece", f"must be a piece id, got {d['piece']!r}")
    if d["x0_obs_mm"] < 0:
        raise bad("bad_position", "x0_obs_mm", f"negative position along the strip {d['x0_obs_mm']:g}")
    for name in ("mm_per_px_x", "mm_per_px_y", "rows", "cols"):
        if d[name] <= 0:
            raise bad("bad_value", name, f"must be positive, got {d[name]!r}")
    if "station" in d and d["station"] != stc.code:
        raise bad(
            "unknown_station",
            "station",
            f"sidecar names station {d['station']!r}, this folder is station {stc.code}'s",
        )
    if "side" in d and d["side"] != stc.side:
        raise bad(
            "wrong_side",
            "side",
            f"this station inspects the {stc.side} surface, the sidecar says {d['side']!r}",
        )
    return d


def _process_frame(ctx: StationContext, f: m.IngestionFile, session: Session) -> UnitOutcome:
    from detection.images import load_gray
    from detection.worker import frame_readings

    stc = ctx.station
    png = stc.folder / f.path
    side = png.with_suffix(".json")
    stem = png.stem
    t0 = time.perf_counter()
    png_stat, side_stat = _stat(png), _stat(side)
    if png_stat is None or side_stat is None:
        present = side_stat or png_stat
        age = time.time() - present[1] / 1e9 if present else float("inf")
        what = "missing_image" if png_stat is None else "missing_sidecar"
        if age < ctx.cfg.sidecar_wait_s:  # its partner may be on its way
            st.mark_file(f.id, session=session, state=st.NEW, run_id=ctx.run_id, retry_after_s=stc.interval_s)
            return UnitOutcome(n_skipped=1)
        return _quarantine_file(
            ctx,
            f,
            session,
            what,
            f"{'image' if png_stat is None else 'sidecar'} "
            f"frames/{stem}.{'png' if png_stat is None else 'json'} is missing",
        )
    try:
        sidecar = check_sidecar(json.loads(side.read_text(encoding="utf-8")), stc)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _quarantine_file(
            ctx, f, session, "bad_sidecar", f"sidecar frames/{stem}.json is not JSON ({exc})"
        )
    except InputError as exc:
        return _quarantine_file(
            ctx,
            f,
            session,
            getattr(exc, "kind", "bad_sidecar"),
            f"sidecar frames/{stem}.json: {exc}",
            exc.field,
        )
    try:
        image01 = load_gray(png)
    except InputError as exc:
        return _quarantine_file(ctx, f, session, "corrupt_image", exc.message)
    if image01.shape != (int(sidecar["rows"]), int(sidecar["cols"])):
        return _quarantine_file(
            ctx,
            f,
            session,
            "bad_sidecar",
            f"the image is {image01.shape[0]} x "
            f"{image01.shape[1]} px, the sidecar says {sidecar['rows']} x {sidecar['cols']}",
        )
    t0 = ctx.tick("read", t0)
    piece = sidecar["piece"].strip()
    frame_key = f"{stc.code}:{stem}"
    known = st.piece_rows([piece], session=session)
    why = "" if piece in known else f"no piece {piece} in the coil model yet (tracking events not imported?)"
    reg_in = None
    if not why:
        reg_in, why = _piece_registration(ctx, piece, session)
    if reg_in is None:
        n_pending, n_expired = _wait_or_give_up(ctx, f, session, [(frame_key, piece, why, None)])
        if n_expired:
            st.mark_file(f.id, session=session, state=st.QUARANTINED, run_id=ctx.run_id, error=why)
            return UnitOutcome(n_files=1, n_quarantined=1)
        st.mark_file(f.id, session=session, state=st.PENDING, run_id=ctx.run_id, retry_after_s=stc.interval_s)
        return UnitOutcome(n_files=1, n_pending=1)
    key, length, width = known[piece]
    t0 = ctx.tick("register", t0)
    # The frame itself must lie on the piece (a wrong x0_obs_mm puts it elsewhere).
    frame_x = np.array(
        [sidecar["x0_obs_mm"], sidecar["x0_obs_mm"] + sidecar["rows"] * sidecar["mm_per_px_x"]]
    )
    span = register(
        frame_x,
        np.zeros(2),
        np.zeros(2),
        np.zeros(2),
        **reg_in,
        y_axis_toward=stc.y_axis_toward,
        length_mm=length,
        width_mm=width,
        tolerance_mm=ctx.cfg.position_tolerance_mm,
    )
    raw = np.array(reg_in["marks_obs_mm"])
    if span.beyond.all() and not ((frame_x[1] > raw.min()) and (frame_x[0] < raw.max())):
        return _quarantine_file(
            ctx,
            f,
            session,
            "beyond_piece",
            f"the frame (x_obs {frame_x[0]:g}..{frame_x[1]:g} mm) lies beyond piece {piece} ({length:g} mm)",
            "x0_obs_mm",
        )
    result = ctx.detector_().detect(image01, sidecar)
    ctx.n_tiles += result.n_tiles
    for k, v in result.seconds.items():
        ctx.seconds[f"detect:{k}"] = ctx.seconds.get(f"detect:{k}", 0.0) + v
    t0 = time.perf_counter()
    dets = result.detections
    readings = frame_readings(dets, sidecar)
    r = register(
        readings["x_obs_mm"],
        readings["y_obs_mm"],
        readings["length_mm"],
        readings["width_mm"],
        **reg_in,
        y_axis_toward=stc.y_axis_toward,
        length_mm=length,
        width_mm=width,
        tolerance_mm=ctx.cfg.position_tolerance_mm,
    )
    t0 = ctx.tick("register", t0)
    keep = np.flatnonzero(~r.beyond)
    heat_ref = None
    image_refs = []
    if len(keep):
        root = ctx.cfg.resolved_image_root()
        if result.heatmap01 is not None:
            heat_ref = f"{stc.code}/heatmaps/{stem}.png"
            _store_file(root / heat_ref, image01=result.heatmap01)
        from detection.worker import crop

        for k in keep:
            ref = f"{stc.code}/crops/{stem}_{k}.png"
            _store_file(root / ref, image01=crop(image01, dets[k].box_px, 8))
            image_refs.append(ref)
    t0 = ctx.tick("images", t0)
    when = _frame_time(sidecar)
    stored = (
        st.store_observations(
            {
                "station_id": ctx.station_id,
                "piece_id": key,
                "side": stc.side,
                **{
                    name: getattr(r, name)[keep]
                    for name in ("x_mm", "y_mm", "x0_mm", "y0_mm", "x1_mm", "y1_mm")
                },
                "x_obs_mm": readings["x_obs_mm"][keep],
                "station_label": [dets[k].label for k in keep],
                "station_confidence": np.array(
                    [np.nan if dets[k].confidence is None else dets[k].confidence for k in keep]
                ),
                "plant_class": [dets[k].label for k in keep],
                "anomaly_score": np.array([dets[k].anomaly_score for k in keep], dtype=np.float64),
                "image_ref": image_refs,
                "heatmap_ref": heat_ref,
                "observed_at": when,
                "source_key": [_detection_key(frame_key, k, dets[k].box_px) for k in keep],
                "ingestion_run_id": ctx.run_id,
            },
            session=session,
        )
        if len(keep)
        else 0
    )
    _store_sightings(ctx, {piece}, known, session)
    st.clear_file_pending(f.id, session=session)
    st.mark_file(
        f.id,
        session=session,
        state=st.DONE,
        run_id=ctx.run_id,
        size_bytes=png_stat[0] + side_stat[0],
        mtime_ns=max(png_stat[1], side_stat[1]),
        n_observations=stored,
    )
    ctx.tick("store", t0)
    return UnitOutcome(n_files=1, n_observations=stored, n_skipped=len(dets) - len(keep))


def _detection_key(frame_key: str, k: int, box_px: tuple[int, int, int, int]) -> str:
    """``<station>:<frame stem>:<k>@<row px>,<col px>``: the k-th detection of the frame and
    its centre in pixels (what ``plant.db_mapping`` links to the ground truth).

    >>> _detection_key("CAL-T:A1_000010_c1", 2, (10, 20, 31, 60))
    'CAL-T:A1_000010_c1:2@20.5,40.0'
    """
    r0, c0, r1, c1 = box_px
    return f"{frame_key}:{k}@{(r0 + r1) / 2:.1f},{(c0 + c1) / 2:.1f}"


def _frame_time(sidecar: dict[str, Any]) -> datetime:
    t = pd.to_datetime(sidecar.get("time"), utc=True, errors="coerce")
    when = datetime.now(UTC) if t is None or pd.isna(t) else t.to_pydatetime()
    return when.astimezone(UTC).replace(tzinfo=None)
