"""What the coil-map page draws, computed from a piece's genealogy: pure, no SQL, no streamlit.

Besides the observations (``tracking.coil_map``), a quality engineer needs the material that
is no longer there: where earlier cuts and crops ended, and which edges trimming took away.
Each is the exact genealogy map of an ancestor's outline into the piece's frame (the maps
place removed material where it would be, off the piece or in the trimmed edge).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tracking.genealogy import Genealogy

# Operations whose input loses material along the length or across the width.
LENGTH_CUTTERS = ("crop", "cut")
WIDTH_CUTTERS = ("trim", "slit")


@dataclass(frozen=True)
class CoilView:
    """Everything the coil map of one piece shows; picklable (it goes through st.cache_data)."""

    piece_id: str
    length_mm: float
    width_mm: float
    grade: str | None
    line: str | None
    # Width profile: (x0_mm, x1_mm, width_mm) per segment from head to tail.
    outline: list[tuple[float, float, float]]
    observations: pd.DataFrame
    # head, tail, weld seams, holes: dicts with mark_id, kind, x_mm, y_mm.
    marks: list[dict] = field(default_factory=list)
    # Lines where a cut or crop of this piece or an ancestor separated material: x_mm, label.
    cut_lines: list[dict] = field(default_factory=list)
    # Material an ancestor had that this piece lacks: x0_mm, x1_mm, y0_mm, y1_mm, label.
    removed_regions: list[dict] = field(default_factory=list)
    # Roll-mark series (fusion): side, class, x_mm (members), y_mm, period_mm (in ``frame``).
    roll_marks: list[dict] = field(default_factory=list)
    # Surface-and-class groups too big for that search: side, class, n.
    roll_marks_skipped: list[dict] = field(default_factory=list)
    ancestors: list[str] = field(default_factory=list)
    # How much longer 1 mm of each source piece (ancestor or the piece) is on this piece:
    # position errors of upstream stations grow by the same factor.
    length_scale: dict[str, float] = field(default_factory=dict)


def _describe(op_kind: str, params: dict) -> str:
    keys = {"crop": ("head_mm", "tail_mm"), "trim": ("os_mm", "ds_mm")}.get(op_kind, ())
    detail = ", ".join(f"{k} {params[k]:g}" for k in keys if isinstance(params.get(k), int | float))
    return f"{op_kind} ({detail})" if detail else op_kind


def cut_lines(g: Genealogy, piece_id: str, margin_mm: float) -> list[dict]:
    """Every crop and cut boundary of the piece's ancestors mapped into its frame, kept when it
    falls within ``margin_mm`` of the piece (the piece's own ends are among them)."""
    lineage = {piece_id, *g.ancestors(piece_id)}
    length = g.piece(piece_id).length_mm
    out: dict[float, dict] = {}
    for op in g.operations:
        if op.kind not in LENGTH_CUTTERS or op.inputs[0] not in lineage:
            continue
        src = op.inputs[0]
        src_len = g.piece(src).length_mm
        if op.kind == "crop":
            xs = [float(op.record["head_mm"]), src_len - float(op.record["tail_mm"])]
        else:
            xs = sorted({float(v) for o in op.record["outputs"] for v in (o["from_mm"], o["to_mm"])})
        xs = [x for x in xs if 0.0 < x < src_len]
        if not xs:
            continue
        res = g.map_points(src, piece_id, np.array(xs), np.zeros(len(xs)), np.ones(len(xs), dtype=bool))
        for x in res.x_mm:
            if -margin_mm <= x <= length + margin_mm:
                out.setdefault(round(float(x), 1), {"x_mm": float(x), "label": f"{op.kind} of {src}"})
    return merge_close(sorted(out.values(), key=lambda d: d["x_mm"]), max(100.0, 0.005 * length))


def merge_close(lines: list[dict], tol_mm: float) -> list[dict]:
    """Lines closer than ``tol_mm`` drawn as one (a coil's head often carries the crops and cuts
    of several ancestors within a few metres), labelled by the first and how many more.

    >>> lines = [{"x_mm": 0.0, "label": "a"}, {"x_mm": 50.0, "label": "b"}, {"x_mm": 900.0, "label": "c"}]
    >>> merge_close(lines, 100)
    [{'x_mm': 0.0, 'label': 'a +1'}, {'x_mm': 900.0, 'label': 'c'}]
    """
    out: list[dict] = []
    count = 0
    for line in lines:
        if out and line["x_mm"] - out[-1]["x_mm"] < tol_mm:
            count += 1
            out[-1]["label"] = f"{out[-1]['label'].split(' +')[0]} +{count}"
            continue
        out.append(dict(line))
        count = 0
    return out


def _removed_rects(op_kind: str, rec: dict, length_mm: float, width_mm: float, kept_out: set[str]) -> list:
    """Rectangles (x0, x1, y0, y1) of the input frame that the operation took away from the
    lineage (for a cut or slit: everything outside the band of the lineage's output)."""
    half = width_mm / 2.0
    if op_kind == "crop":
        return [
            (0.0, float(rec["head_mm"]), -half, half),
            (length_mm - float(rec["tail_mm"]), length_mm, -half, half),
        ]
    if op_kind == "trim":
        return [
            (0.0, length_mm, -half, -half + float(rec["ds_mm"])),
            (0.0, length_mm, half - float(rec["os_mm"]), half),
        ]
    band = next(o for o in rec["outputs"] if o["piece"] in kept_out)
    if op_kind == "cut":
        return [(0.0, float(band["from_mm"]), -half, half), (float(band["to_mm"]), length_mm, -half, half)]
    return [(0.0, length_mm, -half, float(band["y_from_mm"])), (0.0, length_mm, float(band["y_to_mm"]), half)]


def removed_regions(g: Genealogy, piece_id: str, margin_mm: float) -> list[dict]:
    """What crops, cuts, trims and slits of the piece's lineage took away, mapped into its frame
    (cropped or cut away beyond the ends, trimmed or slit away beyond the edges), clipped to
    ``margin_mm`` around the piece."""
    lineage = {piece_id, *g.ancestors(piece_id)}
    piece = g.piece(piece_id)
    length = piece.length_mm
    regions: list[dict] = []
    for op in g.operations:
        if op.kind not in LENGTH_CUTTERS + WIDTH_CUTTERS or op.inputs[0] not in lineage:
            continue
        src = g.piece(op.inputs[0])
        rects = [
            r
            for r in _removed_rects(op.kind, op.record, src.length_mm, src.width_mm, lineage)
            if r[1] > r[0] and r[3] > r[2]
        ]
        if not rects:
            continue
        xs = np.array([x for r in rects for x in (r[0], r[1], r[0], r[1])])
        ys = np.array([y for r in rects for y in (r[2], r[2], r[3], r[3])])
        res = g.map_points(src.piece_id, piece_id, xs, ys, np.ones(len(xs), dtype=bool))
        label = f"{_describe(op.kind, op.record)} of {src.piece_id}"
        for k in range(len(rects)):
            mx, my = res.x_mm[4 * k : 4 * k + 4], res.y_mm[4 * k : 4 * k + 4]
            x0, x1 = max(float(mx.min()), -margin_mm), min(float(mx.max()), length + margin_mm)
            if x1 - x0 > 1e-6:
                regions.append(
                    {
                        "x0_mm": x0,
                        "x1_mm": x1,
                        "y0_mm": float(my.min()),
                        "y1_mm": float(my.max()),
                        "label": label,
                    }
                )
    return regions


def marks(g: Genealogy, piece_id: str) -> list[dict]:
    return [{"mark_id": k.mark_id, "kind": k.kind, "x_mm": k.x_mm, "y_mm": k.y_mm} for k in g.marks(piece_id)]


def filter_observations(
    obs: pd.DataFrame,
    *,
    classes: list[str] | None = None,
    stations: list[str] | None = None,
    side: str | None = None,
    min_severity: float = 0.0,
    show_removed: bool = True,
) -> pd.DataFrame:
    """The coil map's filters (``None`` or empty: no restriction)."""
    keep = np.ones(len(obs), dtype=bool)
    if classes:
        keep &= obs["class"].isin(classes).to_numpy()
    if stations:
        keep &= obs["station"].isin(stations).to_numpy()
    if side in ("top", "bottom"):
        keep &= (obs["side"] == side).to_numpy()
    if min_severity > 0.0:
        keep &= (obs["severity"] >= min_severity).to_numpy()
    if not show_removed:
        keep &= (obs["status"] == "kept").to_numpy()
    return obs[keep]


def length_scales(g: Genealogy, piece_id: str) -> dict[str, float]:
    """Per piece of the lineage: the length on ``piece_id`` of 1 mm of that piece (elongation
    between them), measured over the middle of the source piece."""
    out = {}
    for src in [piece_id, *g.ancestors(piece_id)]:
        mid = g.piece(src).length_mm / 2.0
        res = g.map_points(
            src, piece_id, np.array([mid - 500.0, mid + 500.0]), np.zeros(2), np.ones(2, dtype=bool)
        )
        out[src] = float(abs(res.x_mm[1] - res.x_mm[0]) / 1000.0) or 1.0
    return out


def seen_together(
    obs: pd.DataFrame,
    observation_id: int,
    along_mm: float,
    across_mm: float,
    length_scale: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Observations of every station at the selected one's spot: same surface, within
    ``along_mm`` / ``across_mm`` of its mapped centre (itself included), with ``dx_mm`` and
    ``dy_mm``, nearest first. ``along_mm`` is a station's position error in its own piece's
    frame, so it grows with the elongation since (``length_scale`` per source piece). Without
    fused evidence this is how the page finds what each station saw of one physical defect."""
    me = obs[obs["observation_id"] == observation_id]
    if me.empty:
        return obs.iloc[0:0].assign(dx_mm=[], dy_mm=[])
    r = me.iloc[0]
    scale = obs["source_piece"].map(length_scale or {}).fillna(1.0).astype(float)
    own = float((length_scale or {}).get(r["source_piece"], 1.0))
    dx = obs["x_mm"] - r["x_mm"]
    dy = obs["y_mm"] - r["y_mm"]
    near = (
        (obs["side"] == r["side"]) & (dx.abs() <= along_mm * np.maximum(scale, own)) & (dy.abs() <= across_mm)
    )
    out = obs[near].assign(dx_mm=dx[near], dy_mm=dy[near])
    return out.assign(_d=np.hypot(out["dx_mm"], out["dy_mm"])).sort_values("_d").drop(columns="_d")
