"""Labelled image tables for the data tools, read from a folder, a CSV file or the coil model.

One row per image: ``path``, ``label`` and, when known, ``coil``, ``grade``, ``line``,
``station``, ``time``, ``split``, ``observation_id``, ``content_hash``. Sources:

- the NEU folder (``.../neu_det`` or the shared data folder): class from the file name, part
  from :mod:`coilmap.datasplit`; there is no metadata, and the audit says so;
- a CSV with columns ``path,label,coil,grade,line,station,time[,split]`` (paths relative to the
  CSV's folder); only ``path`` and ``label`` are required;
- the coil model: every observation with a ``plant_class`` (and its ``image_ref``, if any), with its
  station, line, piece grade and time. Its **coil group** is the hot coil (root piece) its
  material came from: the piece's only root, or, on a strip welded from several hot coils,
  the one its spot maps back into through the genealogy.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from coilmap import models as m
from coilmap.datasplit import neu_class, neu_part
from coilmap.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
CSV_COLUMNS = ("path", "label", "coil", "grade", "line", "station", "time", "split")


def file_hash(path: Path) -> str | None:
    try:
        return hashlib.sha1(path.read_bytes()).hexdigest()
    except OSError:
        return None


def neu_folder(root: Path) -> Path | None:
    """The NEU images folder under ``root`` (``root`` itself, ``IMAGES`` or ``neu_det/IMAGES``)."""
    for cand in (root / "neu_det" / "IMAGES", root / "IMAGES", root):
        if cand.is_dir() and any(cand.glob("crazing_*.jpg")):
            return cand
    return None


def neu_table(root: Path, *, hashes: bool = True) -> pd.DataFrame:
    """Every NEU image with its class and its part (``render`` included: the audit shows it)."""
    folder = neu_folder(root)
    if folder is None:
        raise InputError("no NEU images (IMAGES/<class>_<n>.jpg) here", source=str(root))
    files = sorted(p.resolve() for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    table = pd.DataFrame(
        {
            "path": [str(p) for p in files],
            "label": [neu_class(p.stem) for p in files],
            "split": [neu_part(p.stem) for p in files],
        }
    )
    if hashes:
        table["content_hash"] = [file_hash(p) for p in files]
    return table


def folder_table(root: Path) -> pd.DataFrame:
    """A folder per class (``root/<class>/*.png``), no metadata, no split."""
    rows = [
        (str(p.resolve()), d.name)
        for d in sorted(root.iterdir())
        if d.is_dir()
        for p in sorted(d.iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not rows:
        raise InputError("no images: expected NEU files or one folder of images per class", source=str(root))
    table = pd.DataFrame(rows, columns=["path", "label"])
    table["content_hash"] = [file_hash(Path(p)) for p in table["path"]]
    return table


def csv_table(path: Path) -> pd.DataFrame:
    """A labelled image table from CSV; relative paths are resolved against its folder."""
    if not path.is_file():
        raise InputError("no such file", source=str(path))
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"not a readable CSV ({exc})", source=str(path)) from None
    for col in ("path", "label"):
        if col not in table:
            raise InputError(f"missing column {col!r} (columns: {', '.join(CSV_COLUMNS)})", source=str(path))
    # An empty path is a defect row without an image (a vendor table's): the audit counts it,
    # the index skips it.
    base = path.resolve().parent
    table["path"] = [
        None if pd.isna(p) or not str(p).strip() else str(p if Path(p).is_absolute() else base / p)
        for p in table["path"]
    ]
    if "split" in table:
        table["split"] = table["split"].str.strip().str.lower()
    try:
        from fusion.audit import check_table

        check_table(table)
    except InputError as exc:
        raise InputError(exc.message, source=str(path), line=exc.line, field=exc.field) from None
    return table


def db_table(*, session: Session) -> pd.DataFrame:
    """Every observation with a plant class, with its metadata and coil group; ``path`` is its
    image (empty for a vendor system's defect row without one)."""
    obs, st, ln, pc = m.Observation.__table__, m.Station.__table__, m.Line.__table__, m.Piece.__table__
    rows = session.execute(
        select(
            obs.c.id,
            obs.c.image_ref,
            obs.c.plant_class,
            obs.c.observed_at,
            obs.c.piece_id,
            obs.c.x_mm,
            obs.c.y_mm,
            obs.c.side,
            st.c.code,
            ln.c.code,
            pc.c.grade,
        )
        .join(st, st.c.id == obs.c.station_id)
        .join(ln, ln.c.id == st.c.line_id)
        .join(pc, pc.c.id == obs.c.piece_id)
        .where(obs.c.plant_class.is_not(None))
        .order_by(obs.c.id)
    ).all()
    columns = ["observation_id", "path", "label", "time", "piece_key", "x_mm", "y_mm", "side"]
    table = pd.DataFrame(rows, columns=[*columns, "station", "line", "grade"])
    roots = piece_roots(sorted(set(table["piece_key"])), session=session)
    table["coil"] = table["piece_key"].map(lambda k: roots[k][0] if len(roots[k]) == 1 else None)
    for key in [k for k, r in roots.items() if len(r) > 1]:
        _trace_to_roots(table, key, roots[key], session)
    return table.drop(columns=["piece_key", "x_mm", "y_mm", "side"])


def _trace_to_roots(table: pd.DataFrame, piece_key: int, roots: list[str], session: Session) -> None:
    """Coil of each observation on a piece welded from several hot coils: the root whose
    material the observation's spot came from (mapped back through the genealogy)."""
    import numpy as np

    from tracking.store import load_genealogy

    rows = np.flatnonzero(table["piece_key"].to_numpy() == piece_key)
    piece_id = session.scalar(select(m.Piece.piece_id).where(m.Piece.id == piece_key))
    g = load_genealogy(str(piece_id), session=session, descendants=False)
    part = table.iloc[rows]
    x = part["x_mm"].to_numpy(dtype=float)
    y = part["y_mm"].to_numpy(dtype=float)
    top = (part["side"] == "top").to_numpy()
    coil = np.full(len(rows), None, dtype=object)
    for root in roots:
        kept = g.map_points(str(piece_id), root, x, y, top).kept & (coil == None)  # noqa: E711
        coil[kept] = root
    # A spot that maps into no hot coil lies off the piece (bad data): its group is all roots.
    coil[coil == None] = "+".join(sorted(roots))  # noqa: E711
    table.loc[table.index[rows], "coil"] = coil


def piece_roots(piece_keys: list[int], *, session: Session) -> dict[int, list[str]]:
    """The root hot coils (piece ids, sorted) each piece was made from: one recursive query."""
    if not piece_keys:
        return {}
    e, p = m.GenealogyEdge.__table__, m.Piece.__table__
    up = (
        select(p.c.id.label("piece"), p.c.id.label("anc"))
        .where(p.c.id.in_(piece_keys))
        .cte("up", recursive=True)
    )
    up = up.union(select(up.c.piece, e.c.parent_id).join(e, e.c.child_id == up.c.anc))
    pairs = session.execute(select(up.c.piece, up.c.anc).where(up.c.anc.not_in(select(e.c.child_id)))).all()
    names = dict(session.execute(select(p.c.id, p.c.piece_id).where(p.c.id.in_({a for _, a in pairs}))).all())
    out: dict[int, list[str]] = {}
    for piece, anc in pairs:
        out.setdefault(piece, []).append(names[anc])
    return {k: sorted(v) for k, v in out.items()}


def load_table(source: str, *, session: Session | None = None) -> pd.DataFrame:
    """The table of ``source``: ``db`` (needs ``session``), a ``.csv`` file, or a folder."""
    if source == "db":
        if session is None:
            raise InputError("reading the coil model needs a database session")
        table = db_table(session=session)
        if table.empty:
            raise InputError("the coil model holds no observations with a plant class")
        return table
    path = Path(source)
    if path.suffix.lower() == ".csv":
        return csv_table(path)
    if path.is_dir():
        return neu_table(path) if neu_folder(path) is not None else folder_table(path)
    raise InputError("not a CSV file, an image folder or 'db'", source=source)
