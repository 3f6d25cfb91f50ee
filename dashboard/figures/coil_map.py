"""The central coil map: top and bottom surfaces as two aligned panels along the length.

Each panel draws the piece's outline (its width profile), what earlier operations removed
(hatched), weld seams, cut lines, holes, roll-mark series with their period, and every
observation in the piece's frame, coloured by class and marked by station (open markers:
material no longer on the piece). Observations are WebGL scatter; above ``max_points`` in
the length window the panel shows their density and only the most severe ones as points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.coil_view import CoilView
from dashboard.figures.palette import OPEN, SYMBOL_CODES, class_colours, station_symbols

SIDES = ("top", "bottom")
MAX_POINTS = 20_000
# Below this many points on a panel SVG markers draw faster than setting up WebGL (which a
# browser without a GPU emulates on the CPU); above it, WebGL.
WEBGL_MIN_POINTS = 1_000
# How many of the most severe observations stay points on an aggregated panel.
TOP_WHEN_AGGREGATED = 2_000
DENSITY_BINS = (300, 24)
# Per point, numeric only (plotly validates object arrays element by element): the id a click
# returns and the scores. Station, line, class and status are one per trace, in its template.
CUSTOM_COLUMNS = ("observation_id", "station_confidence", "anomaly_score", "severity")
HOVER = (
    "<b>{cls}</b> · station {station} (line {line}) · {status}<br>"
    "station label %{{text}} · confidence %{{customdata[1]:.2f}}<br>"
    "anomaly score %{{customdata[2]:.2f}} · severity %{{customdata[3]:.2f}}<br>"
    "x %{{x:,.0f}} mm · y %{{y:,.0f}} mm<extra>#%{{customdata[0]}}</extra>"
)


@dataclass(frozen=True)
class CoilMapSummary:
    """What the figure shows: counts per side and whether the side was aggregated."""

    n_in_window: dict[str, int]
    n_points: dict[str, int]
    aggregated: dict[str, bool]


def window_of(view: CoilView, x_range_mm: tuple[float, float] | None = None) -> tuple[float, float]:
    if x_range_mm is not None:
        return float(x_range_mm[0]), float(x_range_mm[1])
    margin = 0.05 * view.length_mm
    return -margin, view.length_mm + margin


def coil_map_figure(
    view: CoilView,
    obs: pd.DataFrame,
    *,
    x_range_mm: tuple[float, float] | None = None,
    max_points: int = MAX_POINTS,
    selected_id: int | None = None,
    height_px: int = 640,
) -> tuple[go.Figure, CoilMapSummary]:
    """The two-panel coil map of ``view`` showing the observations ``obs`` (already filtered;
    columns of :data:`tracking.coil_map.COLUMNS` plus ``class`` and ``severity``)."""
    x_lo, x_hi = window_of(view, x_range_mm)
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.09,
        subplot_titles=("Top surface", "Bottom surface"),
    )
    colours = class_colours(view.observations["class"].unique()) if len(view.observations) else {}
    symbols = (
        station_symbols(view.observations["station"].dropna().unique()) if len(view.observations) else {}
    )
    traces = _Traces()
    in_window = obs[(obs["x_mm"] >= x_lo) & (obs["x_mm"] <= x_hi)]
    summary = CoilMapSummary({}, {}, {})
    for row, side in enumerate(SIDES, start=1):
        _material(traces, view, row)
        part = in_window[in_window["side"] == side]
        summary.n_in_window[side] = len(part)
        aggregate = len(part) > max_points
        summary.aggregated[side] = aggregate
        if aggregate:
            _density(traces, part, row, (x_lo, x_hi), view)
            part = part.nlargest(TOP_WHEN_AGGREGATED, "severity")
        summary.n_points[side] = len(part)
        _points(traces, part, row, colours, symbols, legend=row == 1 or not summary.n_points.get("top"))
    _legend_for_stations(traces, symbols)
    shapes, annotations = _lines(traces, view, (x_lo, x_hi))
    for row, side in enumerate(SIDES, start=1):
        annotations += _roll_marks(traces, view, side, row)
    if selected_id is not None:
        _highlight(traces, obs, selected_id)
    # One call each: plotly re-validates the layout on every add_trace / add_vline / update.
    fig.add_traces(traces.items, rows=traces.rows, cols=[1] * len(traces.rows))
    half = _half_extent(view)
    yaxis = {"range": [-half, half], "title": {"text": "y mm (OS +)"}, "zeroline": False}
    xaxis = {"range": [x_lo, x_hi], "showgrid": False}
    fig.update_layout(
        shapes=shapes,
        annotations=list(fig.layout.annotations) + annotations,
        yaxis=yaxis,
        yaxis2=yaxis,
        xaxis=xaxis,
        xaxis2={**xaxis, "title": {"text": "x mm from the head"}},
        height=height_px,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        hovermode="closest",
        legend={"orientation": "h", "y": -0.12},
        dragmode="zoom",
        clickmode="event+select",
        uirevision=view.piece_id,
        plot_bgcolor="white",
    )
    return fig, summary


class _Traces:
    """Traces collected with their panel row, added to the figure in one call."""

    def __init__(self) -> None:
        self.items: list = []
        self.rows: list[int] = []

    def add_trace(self, trace, row: int, col: int = 1) -> None:  # type: ignore[no-untyped-def]
        self.items.append(trace)
        self.rows.append(row)


def _half_extent(view: CoilView) -> float:
    half = view.width_mm / 2.0
    for r in view.removed_regions:
        half = max(half, abs(r["y0_mm"]), abs(r["y1_mm"]))
    return half * 1.08


def outline_xy(outline: list[tuple[float, float, float]]) -> tuple[list[float], list[float]]:
    """The closed polygon of a width profile (head to tail along the OS edge, back along DS).

    >>> outline_xy([(0.0, 10.0, 4.0), (10.0, 20.0, 2.0)])
    ([0.0, 10.0, 10.0, 20.0, 20.0, 10.0, 10.0, 0.0, 0.0], [2.0, 2.0, 1.0, 1.0, -1.0, -1.0, -2.0, -2.0, 2.0])
    """
    xs: list[float] = []
    ys: list[float] = []
    for x0, x1, w in outline:
        xs += [x0, x1]
        ys += [w / 2.0, w / 2.0]
    for x0, x1, w in reversed(outline):
        xs += [x1, x0]
        ys += [-w / 2.0, -w / 2.0]
    return xs + xs[:1], ys + ys[:1]


def _material(fig: _Traces, view: CoilView, row: int) -> None:
    xs, ys = outline_xy(view.outline)
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines",
            fill="toself",
            fillcolor="rgba(200,205,215,0.35)",
            line={"color": "#333", "width": 1},
            name="piece outline",
            hoverinfo="skip",
            showlegend=row == 1,
            legendgroup="outline",
        ),
        row=row,
        col=1,
    )
    for k, r in enumerate(view.removed_regions):
        fig.add_trace(
            go.Scatter(
                x=[r["x0_mm"], r["x1_mm"], r["x1_mm"], r["x0_mm"], r["x0_mm"]],
                y=[r["y0_mm"], r["y0_mm"], r["y1_mm"], r["y1_mm"], r["y0_mm"]],
                mode="lines",
                fill="toself",
                fillcolor="rgba(150,150,150,0.15)",
                fillpattern={"shape": "/", "fgcolor": "rgba(120,120,120,0.5)", "size": 8},
                line={"width": 0},
                hoveron="fills",
                text=f"removed: {r['label']}",
                hoverinfo="text",
                name="removed material",
                legendgroup="removed",
                showlegend=row == 1 and k == 0,
            ),
            row=row,
            col=1,
        )


def _density(
    fig: _Traces, part: pd.DataFrame, row: int, x_range: tuple[float, float], view: CoilView
) -> None:
    half = _half_extent(view)
    counts, xe, ye = np.histogram2d(
        part["x_mm"], part["y_mm"], bins=DENSITY_BINS, range=[list(x_range), [-half, half]]
    )
    z = np.where(counts.T > 0, counts.T, np.nan)
    fig.add_trace(
        go.Heatmap(
            x=(xe[:-1] + xe[1:]) / 2,
            y=(ye[:-1] + ye[1:]) / 2,
            z=z,
            colorscale="YlOrRd",
            showscale=row == 1,
            colorbar={"title": "obs/bin", "len": 0.4, "y": 0.8},
            name="density",
            hovertemplate="x %{x:,.0f} mm · y %{y:,.0f} mm<br>%{z} observations<extra>density</extra>",
        ),
        row=row,
        col=1,
    )


def custom_data(part: pd.DataFrame) -> np.ndarray:
    """The (n, 4) float array of :data:`CUSTOM_COLUMNS`."""
    return np.column_stack(
        [pd.to_numeric(part[c], errors="coerce").to_numpy(dtype=np.float64) for c in CUSTOM_COLUMNS]
    )


def _points(fig: _Traces, part: pd.DataFrame, row: int, colours: dict, symbols: dict, legend: bool) -> None:
    """One trace per class, station and kept/removed (WebGL from :data:`WEBGL_MIN_POINTS`
    points): colour and symbol are scalars, so plotly validates arrays of numbers only
    (removed material: open symbols)."""
    scatter = go.Scattergl if len(part) >= WEBGL_MIN_POINTS else go.Scatter
    shown_legend: set[str] = set()
    kept_all = (part["status"] == "kept").to_numpy()
    for (cls, station, kept), group in part.assign(_kept=kept_all).groupby(
        ["class", "station", "_kept"], sort=True
    ):
        status = "on the coil" if kept else ", ".join(sorted(set(group["status"]))) + " (removed)"
        text = (group["source_piece"].astype(str) + ": " + group["station_label"].astype(str)).to_numpy(
            dtype=object
        )
        fig.add_trace(
            scatter(
                x=group["x_mm"].to_numpy(dtype=np.float64),
                y=group["y_mm"].to_numpy(dtype=np.float64),
                mode="markers",
                name=str(cls),
                legendgroup=f"class:{cls}",
                showlegend=legend and cls not in shown_legend,
                marker={
                    "color": colours.get(cls, "#7f7f7f"),
                    "symbol": SYMBOL_CODES[symbols.get(station, "circle")] + (0 if kept else OPEN),
                    "size": 9,
                    "line": {"width": 1, "color": "rgba(0,0,0,0.45)"},
                },
                customdata=custom_data(group),
                text=text,
                hovertemplate=HOVER.format(
                    cls=cls, station=station, line=group["line"].iloc[0], status=status
                ),
            ),
            row=row,
        )
        shown_legend.add(cls)


def _legend_for_stations(fig: _Traces, symbols: dict[str, str]) -> None:
    for station, symbol in symbols.items():
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=f"station {station}",
                marker={"symbol": symbol, "color": "#555", "size": 9},
                legendgroup=f"station:{station}",
                hoverinfo="skip",
            ),
            row=1,
            col=1,
        )


def _vline(x: float, row: int, line: dict) -> dict:
    axis = "" if row == 1 else str(row)
    return {"type": "line", "x0": x, "x1": x, "xref": f"x{axis}", "y0": 0, "y1": 1, "yref": f"y{axis} domain",
            "line": line}  # fmt: skip


def _lines(fig: _Traces, view: CoilView, window: tuple[float, float]) -> tuple[list[dict], list[dict]]:
    """Weld seams, cut lines and holes; returns the layout's shapes and annotations (a cut
    line closer than 2 % of the window to the last labelled one is drawn without a label)."""
    min_gap = 0.02 * (window[1] - window[0])
    last_label = -np.inf
    shapes: list[dict] = []
    notes: list[dict] = []
    for mark in view.marks:
        if mark["kind"] == "weld":
            shapes += [
                _vline(mark["x_mm"], row, {"color": "#c0392b", "dash": "dash", "width": 2}) for row in (1, 2)
            ]
            notes.append({"x": mark["x_mm"], "y": 1.0, "yref": "paper", "text": "weld", "showarrow": False,
                          "font": {"color": "#c0392b", "size": 11}, "yanchor": "bottom"})  # fmt: skip
        elif mark["kind"] not in ("head", "tail"):
            for row in (1, 2):
                fig.add_trace(
                    go.Scatter(
                        x=[mark["x_mm"]],
                        y=[mark["y_mm"]],
                        mode="markers+text",
                        text=[mark["kind"]],
                        textposition="top center",
                        marker={"symbol": "circle-open-dot", "size": 12, "color": "black"},
                        name=mark["kind"],
                        hovertext=mark["mark_id"],
                        hoverinfo="text",
                        showlegend=False,
                    ),
                    row=row,
                )
    for cut in view.cut_lines:
        shapes += [
            _vline(cut["x_mm"], row, {"color": "#111", "dash": "dashdot", "width": 1.5}) for row in (1, 2)
        ]
        if cut["x_mm"] - last_label < min_gap:
            continue
        last_label = cut["x_mm"]
        notes.append({"x": cut["x_mm"], "y": 0.5, "yref": "paper", "text": cut["label"], "showarrow": False,
                      "textangle": -90, "font": {"size": 10, "color": "#111"}, "xshift": -8})  # fmt: skip
    notes.append({"x": 0, "y": 1.0, "yref": "paper", "text": "head", "showarrow": False, "yanchor": "bottom",
                  "xanchor": "left"})  # fmt: skip
    notes.append({"x": view.length_mm, "y": 1.0, "yref": "paper", "text": "tail", "showarrow": False,
                  "yanchor": "bottom", "xanchor": "right"})  # fmt: skip
    return shapes, notes


def _roll_marks(fig: _Traces, view: CoilView, side: str, row: int) -> list[dict]:
    notes: list[dict] = []
    for k, series in enumerate(s for s in view.roll_marks if s["side"] == side):
        xs = np.asarray(series["x_mm"], dtype=float)
        here = series.get("period_here_mm", series["period_mm"])
        label = (
            f"roll marks ({series['class']}), period {here:,.0f} mm"
            f" ({series['period_mm']:,.0f} mm on {series['frame']})"
        )
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=np.full(len(xs), series["y_mm"]),
                mode="lines+markers",
                marker={"symbol": "line-ns", "size": 18, "line": {"width": 2, "color": "#6c3483"}},
                line={"color": "#6c3483", "width": 1, "dash": "dot"},
                name="roll-mark series",
                legendgroup="rollmarks",
                hovertext=label,
                hoverinfo="text+x",
                showlegend=k == 0 and row == 1,
            ),
            row=row,
            col=1,
        )
        axis = "" if row == 1 else str(row)
        notes.append(
            dict(
                x=float(xs[0]),
                y=series["y_mm"],
                text=label,
                xref=f"x{axis}",
                yref=f"y{axis}",
                showarrow=True,
                arrowhead=0,
                ax=40,
                ay=-28,
                font={"color": "#6c3483", "size": 10},
            )
        )
    return notes


def _highlight(fig: _Traces, obs: pd.DataFrame, selected_id: int) -> None:
    hit = obs[obs["observation_id"] == selected_id]
    if hit.empty:
        return
    r = hit.iloc[0]
    fig.add_trace(
        go.Scatter(
            x=[r["x_mm"]],
            y=[r["y_mm"]],
            mode="markers",
            name="selected",
            marker={"symbol": "circle-open", "size": 26, "line": {"width": 3, "color": "black"}},
            hoverinfo="skip",
            showlegend=False,
        ),
        row=1 if r["side"] == "top" else 2,
        col=1,
    )
