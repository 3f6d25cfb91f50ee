"""Labelled image tables for the data tools, read from a folder, a CSV file or the coil model.

One row per image: ``path``, ``label`` and, when known, ``coil``, ``grade``, ``line``,
``station``, ``time``, ``split``, ``observation_id``, ``content_hash``. Sources:

- the NEU folder (``.../neu_det`` or the shared data folder): class from the file name, part
  from :mod:`coilmap.datasplit`; there is no metadata, and the audit says so;
- a CSV with columns ``path,label,coil,grade,line,station,time[,split]`` (paths relative to the
  CSV's folder); only ``path`` and ``label`` are required;
- the coil model: every observation with a ``plant_class`` and an ``image_ref``, with its
  station, line, piece grade and time. Its **coil group** is the hot coil (root piece) its
  piece was rolled from; a piece welded from several hot coils joins them into one group
  (its observations are not traced back to the one coil they lie on), so grouped splits stay
  safe at the price of slightly coarser groups.
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
    for i, v in enumerate(table["path"]):
        if pd.isna(v) or not str(v).strip():
            raise InputError("empty path", source=str(path), line=i + 2, field="path")
    base = path.resolve().parent
    table["path"] = [str(p if Path(p).is_absolute() else base / p) for p in table["path"]]
    if "split" in table:
        table["split"] = table["split"].str.strip().str.lower()
    return table


def db_table(*, session: Session) -> pd.DataFrame:
    """Every labelled observation with an image, with its metadata and coil group."""
    obs, st, ln, pc = m.Observation.__table__, m.Station.__table__, m.Line.__table__, m.Piece.__table__
    rows = session.execute(
        select(
            obs.c.id,
            obs.c.image_ref,
            obs.c.plant_class,
            obs.c.observed_at,
            obs.c.piece_id,
            st.c.code,
            ln.c.code,
            pc.c.grade,
        )
        .join(st, st.c.id == obs.c.station_id)
        .join(ln, ln.c.id == st.c.line_id)
        .join(pc, pc.c.id == obs.c.piece_id)
        .where(obs.c.plant_class.is_not(None), obs.c.image_ref.is_not(None))
        .order_by(obs.c.id)
    ).all()
    table = pd.DataFrame(
        rows, columns=["observation_id", "path", "label", "time", "piece_key", "station", "line", "grade"]
    )
    groups = coil_groups(sorted(set(table["piece_key"])), session=session)
    table["coil"] = table["piece_key"].map(groups)
    return table.drop(columns=["piece_key"])


def coil_groups(piece_keys: list[int], *, session: Session) -> dict[int, str]:
    """Coil group of each piece: the piece id of its root hot coil (one recursive query); pieces
    with several roots join those roots into one group, named by the smallest root id."""
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
    root_ids = set(a for _, a in pairs)
    names = dict(session.execute(select(p.c.id, p.c.piece_id).where(p.c.id.in_(root_ids))).all())
    # Union-find over roots that share a piece.
    parent: dict[int, int] = {r: r for r in root_ids}

    def find(r: int) -> int:
        while parent[r] != r:
            parent[r] = parent[parent[r]]
            r = parent[r]
        return r

    roots_of: dict[int, list[int]] = {}
    for piece, anc in pairs:
        roots_of.setdefault(piece, []).append(anc)
    for roots in roots_of.values():
        for r in roots[1:]:
            a, b = find(roots[0]), find(r)
            if a != b:
                parent[max(a, b, key=lambda k: names[k])] = min(a, b, key=lambda k: names[k])
    return {piece: names[find(roots[0])] for piece, roots in roots_of.items()}


def load_table(source: str, *, session: Session | None = None) -> pd.DataFrame:
    """The table of ``source``: ``db`` (needs ``session``), a ``.csv`` file, or a folder."""
    if source == "db":
        if session is None:
            raise InputError("reading the coil model needs a database session")
        table = db_table(session=session)
        if table.empty:
            raise InputError("the coil model holds no observations with a plant class and an image")
        return table
    path = Path(source)
    if path.suffix.lower() == ".csv":
        return csv_table(path)
    if path.is_dir():
        return neu_table(path) if neu_folder(path) is not None else folder_table(path)
    raise InputError("not a CSV file, an image folder or 'db'", source=source)
