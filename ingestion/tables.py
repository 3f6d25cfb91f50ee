"""Vendor defect tables: read them into one canonical frame, validate every row at once.

Two formats of the demo plant (``docs/plant.md``): SurfSpec's ``defects.csv`` (``;``
separated) and InspeX's ``inspex.sqlite`` (opened read-only). Both become a DataFrame with the
columns of :data:`CANONICAL` plus ``line_no`` (the CSV line, or the table's row number).
Validation is vectorised (pandas/numpy, no per-row Python): :func:`validate_rows` returns the
good rows and one reason per bad row.

>>> df = pd.DataFrame({"record_no": ["1", "2", "2", "x"], "piece": ["P1"] * 4,
...     "side": ["top"] * 4, "x_obs_mm": ["10", "-5", "30", "1"], "y_obs_mm": ["0"] * 4,
...     "length_mm": ["1"] * 4, "width_mm": ["1"] * 4, "label": ["Scratch"] * 4,
...     "confidence": ["0.5"] * 4, "roi": [""] * 4, "time": ["2026-01-01T00:00:00Z"] * 4,
...     "line_no": [2, 3, 4, 5]})
>>> good, bad = validate_rows(df, station="S", side="top", label_map={"Scratch": "scratches"})
>>> source_keys("S", good["record_no"]), good["plant_class"].tolist()
(['S:1'], ['scratches'])
>>> [(b.line_no, b.field, b.kind) for b in bad]
[(3, 'x_obs_mm', 'bad_position'), (4, 'record_no', 'duplicate'), (5, 'record_no', 'bad_value')]
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from coilmap.errors import InputError

CANONICAL = (
    "record_no",
    "piece",
    "side",
    "x_obs_mm",
    "y_obs_mm",
    "length_mm",
    "width_mm",
    "label",
    "confidence",
    "roi",
    "time",
)

# SurfSpec defects.csv column -> canonical column.
SURFSPEC_COLUMNS = {
    "DefectNo": "record_no",
    "CoilId": "piece",
    "Surface": "side",
    "MdPos_mm": "x_obs_mm",
    "CdPos_mm": "y_obs_mm",
    "Length_mm": "length_mm",
    "Width_mm": "width_mm",
    "Class": "label",
    "Confidence": "confidence",
    "RoiFile": "roi",
    "Timestamp": "time",
}
SURFSPEC_OPTIONAL = ("Confidence", "RoiFile", "Length_mm", "Width_mm")
INSPEX_REQUIRED = ("id", "coil", "side", "pos_md_m", "pos_cd_mm", "class_code", "ts")
SIDE_CODES = {"TOP": "top", "T": "top", "BOTTOM": "bottom", "B": "bottom", "BOT": "bottom"}


@dataclass(frozen=True)
class BadRecord:
    """One record that cannot be stored, with its reason."""

    line_no: int | None
    field: str | None
    kind: str
    reason: str
    source_key: str | None


SURFSPEC_NUMERIC = ("DefectNo", "MdPos_mm", "CdPos_mm", "Length_mm", "Width_mm", "Confidence")


def read_surfspec_csv(path: Path) -> pd.DataFrame:
    """``defects.csv`` in the canonical columns; a file-level :class:`InputError` for an
    unreadable file or missing columns (the whole file is quarantined).

    Fast path: the C parser reads the numeric columns as floats. A file with a value that is
    not a number is read again as text, so that each bad row gets its own reason.
    """
    try:
        header = pd.read_csv(path, sep=";", nrows=0, engine="c")
    except pd.errors.EmptyDataError as exc:
        raise InputError("empty table (no header)", source=str(path)) from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(
            f"not a readable ';' separated table ({str(exc).splitlines()[0]})", source=str(path)
        ) from exc
    missing = [c for c in SURFSPEC_COLUMNS if c not in header.columns and c not in SURFSPEC_OPTIONAL]
    if missing:
        raise InputError(
            f"missing columns {missing} (has {list(header.columns)})", source=str(path), field=missing[0]
        )
    numeric = {c: "float64" for c in SURFSPEC_NUMERIC if c in header.columns}
    text = {c: object for c in SURFSPEC_COLUMNS if c in header.columns and c not in numeric}
    try:
        raw = pd.read_csv(
            path,
            sep=";",
            dtype={**numeric, **text},
            engine="c",
            on_bad_lines="error",
            keep_default_na=False,
            na_values={c: [""] for c in numeric},
        )
    except ValueError:
        try:
            raw = pd.read_csv(
                path,
                sep=";",
                dtype=object,
                keep_default_na=False,
                na_filter=False,
                engine="c",
                on_bad_lines="error",
            )
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(
                f"not a readable ';' separated table ({str(exc).splitlines()[0]})", source=str(path)
            ) from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(
            f"not a readable ';' separated table ({str(exc).splitlines()[0]})", source=str(path)
        ) from exc
    df = pd.DataFrame(
        {canon: raw[col] if col in raw.columns else "" for col, canon in SURFSPEC_COLUMNS.items()}
    )
    df["line_no"] = np.arange(2, len(df) + 2)  # line 1 is the header
    return df


def read_inspex_sqlite(path: Path) -> pd.DataFrame:
    """InspeX's ``defects`` table joined to its class names, opened read-only."""
    uri = f"file:{path.resolve()}?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise InputError(f"cannot open the InspeX database ({exc})", source=str(path)) from exc
    try:
        cols = {r[1] for r in con.execute("PRAGMA table_info(defects)")}
        if not cols:
            raise InputError("no defects table", source=str(path), field="defects")
        missing = [c for c in INSPEX_REQUIRED if c not in cols]
        if missing:
            raise InputError(f"defects table lacks columns {missing}", source=str(path), field=missing[0])
        t = pd.read_sql_query(
            "SELECT d.*, c.name AS class_name FROM defects d LEFT JOIN classes c ON c.code = d.class_code"
            " ORDER BY d.rowid",
            con,
        )
    except sqlite3.DatabaseError as exc:
        raise InputError(f"not a readable InspeX database ({exc})", source=str(path)) from exc
    finally:
        con.close()

    def col(name: str) -> pd.Series:
        return t[name] if name in t.columns else pd.Series([np.nan] * len(t))

    md_m = pd.to_numeric(t["pos_md_m"], errors="coerce")
    x_obs = md_m * 1000.0
    if (md_m.isna() & t["pos_md_m"].notna()).any():  # keep the text of what is not a number
        x_obs = x_obs.astype(object).where(md_m.notna() | t["pos_md_m"].isna(), t["pos_md_m"])
    # A class code without a name in ``classes`` is reported as the code itself (unknown).
    label = t["class_name"].where(t["class_name"].notna(), "code " + t["class_code"].astype(str))
    return pd.DataFrame(
        {
            "record_no": t["id"],
            "piece": t["coil"].fillna("").astype(str),
            "side": t["side"].fillna("").astype(str),
            "x_obs_mm": x_obs,
            "y_obs_mm": t["pos_cd_mm"],
            "length_mm": col("len_mm"),
            "width_mm": col("wid_mm"),
            "label": label.astype(str),
            "confidence": col("confidence"),
            "roi": col("image").fillna("").astype(str),
            "time": t["ts"].fillna("").astype(str),
            "line_no": np.arange(1, len(t) + 1),
        }
    )


def _num(s: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _blank(s: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.isna().to_numpy()
    return s.isna().to_numpy() | s.astype(str).str.strip().isin(["", "None", "nan"]).to_numpy()


def _text(s: pd.Series) -> np.ndarray:
    """Values as an object array of str (integers without a trailing ``.0``)."""
    if pd.api.types.is_float_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        whole = np.isfinite(v) & (v == np.round(v))
        out = v.astype(object)
        out[whole] = v[whole].astype(np.int64).astype(str)
        return out
    return s.to_numpy(dtype=object)


def source_keys(station: str, record_no: np.ndarray) -> list[str]:
    """``<station>:<record_no>``: the vendor's record number is unique per station."""
    prefix = f"{station}:"
    return [prefix + str(r) for r in record_no.tolist()]


def _mapped(s: pd.Series, fn) -> np.ndarray:  # type: ignore[no-untyped-def]
    """``fn`` applied to each distinct value only (a vendor table has few distinct pieces,
    sides and classes), spread back to every row."""
    codes, uniques = pd.factorize(s, use_na_sentinel=False)
    return np.asarray([fn(u) for u in uniques], dtype=object)[codes] if len(s) else np.zeros(0, object)


def validate_rows(
    df: pd.DataFrame, *, station: str, side: str, label_map: dict[str, str]
) -> tuple[pd.DataFrame, list[BadRecord]]:
    """The rows that can be stored (a dict of equally long numpy arrays: ``record_no``,
    ``piece``, positions, labels, ``plant_class``, ``observed_at``, ...) and one
    :class:`BadRecord` per other row (the first failing check names it). The source key of a
    row is ``<station>:<record_no>`` (:func:`source_keys`)."""
    n = len(df)
    reason = np.full(n, "", dtype=object)
    field = np.full(n, "", dtype=object)
    kind = np.full(n, "", dtype=object)

    def flag(mask: np.ndarray, fld: str, knd: str, why: str, shown=None) -> None:  # type: ignore[no-untyped-def]
        """Mark the rows of ``mask`` not yet bad; ``shown()`` (an array) adds each row's value."""
        new = np.flatnonzero(mask & (reason == ""))
        if not new.size:
            return
        reason[new] = (
            why if shown is None else [f"{why}{v!s}" for v in np.asarray(shown(), dtype=object)[new]]
        )
        field[new] = fld
        kind[new] = knd

    rec = _num(df["record_no"])
    rec_ok = np.isfinite(rec) & (rec == np.round(rec))
    flag(
        ~rec_ok,
        "record_no",
        "bad_value",
        "record number must be an integer, got ",
        lambda: _text(df["record_no"]),
    )
    rec_int = np.where(rec_ok, rec, -1).astype(np.int64)
    dup = pd.Series(rec_int).duplicated(keep="first").to_numpy() & rec_ok
    flag(dup, "record_no", "duplicate", "duplicate record number in this file: ", lambda: rec_int)
    piece = _mapped(df["piece"], lambda v: "" if v is None or pd.isna(v) else str(v).strip())
    flag(piece == "", "piece", "missing_value", "no piece id")
    sides = _mapped(df["side"], lambda v: SIDE_CODES.get(str(v).strip().upper(), "?"))
    flag(
        sides == "?",
        "side",
        "bad_value",
        "surface must be TOP/BOTTOM, got ",
        lambda: df["side"].to_numpy(object),
    )
    flag(
        (sides != "?") & (sides != side),
        "side",
        "wrong_side",
        f"this station inspects the {side} surface, the row says ",
        lambda: sides,
    )
    values = {}
    for name in ("x_obs_mm", "y_obs_mm", "length_mm", "width_mm"):
        v = _num(df[name])
        if name in ("length_mm", "width_mm"):
            v = np.where(_blank(df[name]), 0.0, v)
        flag(
            ~np.isfinite(v),
            name,
            "bad_value",
            f"{name} must be a finite number, got ",
            lambda name=name: _text(df[name]),
        )
        values[name] = v
    flag(
        values["x_obs_mm"] < 0,
        "x_obs_mm",
        "bad_position",
        "negative position along the strip: ",
        lambda: values["x_obs_mm"],
    )
    for name in ("length_mm", "width_mm"):
        flag(values[name] < 0, name, "bad_value", f"negative {name}: ", lambda name=name: values[name])
    conf = _num(df["confidence"])
    conf_blank = _blank(df["confidence"])
    flag(
        ~conf_blank & ~((conf >= 0) & (conf <= 1)),
        "confidence",
        "bad_value",
        "confidence must be in [0, 1], got ",
        lambda: _text(df["confidence"]),
    )
    labels = _mapped(df["label"], lambda v: str(v).strip())
    plant = _mapped(df["label"], lambda v: label_map.get(str(v).strip()))
    flag(
        pd.isna(plant),
        "label",
        "unknown_class",
        "unknown vendor class (not in the station's label map): ",
        lambda: labels,
    )
    times = pd.to_datetime(df["time"], utc=True, errors="coerce", format="ISO8601")
    flag(
        times.isna().to_numpy(),
        "time",
        "bad_value",
        "time must be ISO 8601, got ",
        lambda: df["time"].to_numpy(object),
    )

    ok = reason == ""
    line_no = df["line_no"].to_numpy()
    bad = [
        BadRecord(
            int(line_no[i]),
            str(field[i]),
            str(kind[i]),
            str(reason[i]),
            (f"{station}:{rec_int[i]}" + (f":dup@{int(line_no[i])}" if kind[i] == "duplicate" else ""))
            if rec_ok[i]
            else None,
        )
        for i in np.flatnonzero(~ok)
    ]
    good = {
        "record_no": rec_int[ok],
        "piece": piece[ok],
        "x_obs_mm": values["x_obs_mm"][ok],
        "y_obs_mm": values["y_obs_mm"][ok],
        "length_mm": values["length_mm"][ok],
        "width_mm": values["width_mm"][ok],
        "station_label": labels[ok],
        "station_confidence": np.where(conf_blank, np.nan, conf)[ok],
        "plant_class": plant[ok],
        "roi": _mapped(
            df["roi"],
            lambda v: "" if v is None or pd.isna(v) or str(v) in ("None", "nan") else str(v).strip(),
        )[ok],
        "observed_at": times.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")[ok],  # UTC
        "line_no": line_no[ok],
    }
    return good, bad
