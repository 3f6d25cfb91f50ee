"""The genealogy graph: hot coils on the left, final coils on the right, operations on edges."""

from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go


def layered_layout(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, tuple[float, float]]:
    """(x, y) per node: x is the generation (longest path from a root), y orders each
    generation by the mean position of its parents so edges cross little.

    >>> layered_layout(["A", "B", "S", "C"], [("A", "S"), ("B", "S"), ("S", "C")])
    {'A': (0.0, 0.0), 'B': (0.0, 1.0), 'S': (1.0, 0.5), 'C': (2.0, 0.5)}
    """
    parents: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        if a in parents and b in parents:
            parents[b].append(a)
    level: dict[str, int] = {}

    def depth(n: str, seen: frozenset = frozenset()) -> int:
        if n not in level:
            level[n] = (
                0 if not parents[n] else 1 + max(depth(p, seen | {n}) for p in parents[n] if p not in seen)
            )
        return level[n]

    for n in nodes:
        depth(n)
    pos: dict[str, tuple[float, float]] = {}
    for lv in range(max(level.values(), default=-1) + 1):
        members = [n for n in nodes if level[n] == lv]
        if lv == 0:
            order = {n: float(i) for i, n in enumerate(members)}
        else:
            order = {n: sum(pos[p][1] for p in parents[n]) / len(parents[n]) for n in members}
        ranked = sorted(members, key=lambda n: (order[n], n))
        ys = [order[n] for n in ranked]
        for i in range(1, len(ys)):  # keep nodes of one generation at least 1 apart
            ys[i] = max(ys[i], ys[i - 1] + 1.0)
        for n, y in zip(ranked, ys, strict=True):
            pos[n] = (float(lv), float(y))
    return pos


def _params_text(params: dict) -> str:
    return "<br>".join(f"{k}: {json.dumps(v) if not isinstance(v, str) else v}" for k, v in params.items())


def genealogy_figure(nodes: pd.DataFrame, edges: pd.DataFrame, height_px: int = 520) -> go.Figure:
    """Pieces as clickable markers (``customdata`` = piece id), operations on the edges with
    their parameters on hover."""
    fig = go.Figure()
    if nodes.empty:
        return fig
    pos = layered_layout(list(nodes["piece_id"]), list(zip(edges["parent"], edges["child"], strict=True)))
    ex: list[float | None] = []
    ey: list[float | None] = []
    mids = []
    for e in edges.itertuples():
        (x0, y0), (x1, y1) = pos[e.parent], pos[e.child]
        ex += [x0, x1, None]
        ey += [y0, y1, None]
        mids.append(((x0 + x1) / 2, (y0 + y1) / 2, e.operation, _params_text(e.params)))
    fig.add_trace(
        go.Scatter(
            x=ex, y=ey, mode="lines", line={"color": "#999", "width": 1.5}, hoverinfo="skip", showlegend=False
        )
    )
    if mids:
        fig.add_trace(
            go.Scatter(
                x=[m[0] for m in mids],
                y=[m[1] for m in mids],
                mode="markers+text",
                text=[m[2] for m in mids],
                textposition="top center",
                marker={"symbol": "diamond", "size": 8, "color": "#555"},
                hovertext=[f"<b>{m[2]}</b><br>{m[3]}" for m in mids],
                hoverinfo="text",
                name="operation",
                showlegend=False,
                textfont={"size": 10, "color": "#555"},
            )
        )
    kind = [
        ("selected" if s else "final coil" if f else "piece")
        for s, f in zip(nodes["selected"], nodes["final"], strict=True)
    ]
    colours = {"selected": "#e67e22", "final coil": "#27ae60", "piece": "#2980b9"}
    for k in ("piece", "final coil", "selected"):
        part = nodes[[x == k for x in kind]]
        if part.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=[pos[p][0] for p in part["piece_id"]],
                y=[pos[p][1] for p in part["piece_id"]],
                mode="markers+text",
                text=list(part["piece_id"]),
                textposition="bottom center",
                name=k,
                marker={"size": 18, "color": colours[k], "line": {"width": 1, "color": "#222"}},
                customdata=part[["piece_id"]].to_numpy(),
                hovertext=[
                    f"<b>{r.piece_id}</b><br>{r.length_m:,.1f} m × {r.width_mm:,.0f} mm"
                    f"<br>grade {r.grade} · line {r.line}<br>click to open its coil map"
                    for r in part.itertuples()
                ],
                hoverinfo="text",
            )
        )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    fig.update_layout(
        height=height_px,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        clickmode="event+select",
        legend={"orientation": "h"},
        plot_bgcolor="white",
        dragmode="pan",
    )
    return fig
