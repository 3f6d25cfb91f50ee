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
from dashboard.figures.palette import class_colours, station_symbols

SIDES = ("top", "bottom")
MAX_POINTS = 20_000
# How many of the most severe observations stay points on an aggregated panel.
TOP_WHEN_AGGREGATED = 2_000
DENSITY_BINS = (300, 24)
CUSTOM_COLUMNS = (
    "observation_id",
    "station",
    "line",
    "source_piece",
    "class",
    "plant_class",
    "station_label",
    "station_confidence",
    "anomaly_score",
    "severity",
    "status",
)
HOVER = (
    "<b>%{customdata[4]}</b> · station %{customdata[1]} (line %{customdata[2]})<br>"
    "station label %{customdata[6]} (confidence %{customdata[7]:.2f}) → plant class %{customdata[5]}<br>"
    "anomaly score %{customdata[8]:.2f} · severity %{customdata[9]:.2f}<br>"
    "seen on %{customdata[3]} · %{customdata[10]}<br>"
    "x %{x:,.0f} mm · y %{y:,.0f} mm<extra>#%{customdata[0]}</extra>"
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
    colours = class_colours(view.observations["class"]) if len(view.observations) else {}
    symbols = station_symbols(view.observations["station"]) if len(view.observations) else {}
    in_window = obs[(obs["x_mm"] >= x_lo) & (obs["x_mm"] <= x_hi)]
    summary = CoilMapSummary({}, {}, {})
    for row, side in enumerate(SIDES, start=1):
        _material(fig, view, row)
        part = in_window[in_window["side"] == side]
        summary.n_in_window[side] = len(part)
        aggregate = len(part) > max_points
        summary.aggregated[side] = aggregate
        if aggregate:
            _density(fig, part, row, (x_lo, x_hi), view)
            part = part.nlargest(TOP_WHEN_AGGREGATED, "severity")
        summary.n_points[side] = len(part)
        _points(fig, part, row, colours, symbols, legend=row == 1 or not summary.n_points.get("top"))
        _roll_marks(fig, view, side, row)
    _legend_for_stations(fig, symbols)
    _lines(fig, view)
    if selected_id is not None:
        _highlight(fig, obs, selected_id)
    half = _half_extent(view)
    fig.update_yaxes(range=[-half, half], title_text="y mm (OS +)", zeroline=False)
    fig.update_xaxes(range=[x_lo, x_hi], showgrid=False)
    fig.update_xaxes(title_text="x mm from the head", row=2, col=1)
    fig.update_layout(
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


def _material(fig: go.Figure, view: CoilView, row: int) -> None:
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
    fig: go.Figure, part: pd.DataFrame, row: int, x_range: tuple[float, float], view: CoilView
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
    cols = [part[c].to_numpy(dtype=object) if c in part else np.full(len(part), None) for c in CUSTOM_COLUMNS]
    return np.stack(cols, axis=-1) if len(part) else np.empty((0, len(CUSTOM_COLUMNS)), dtype=object)


def _points(fig: go.Figure, part: pd.DataFrame, row: int, colours: dict, symbols: dict, legend: bool) -> None:
    for cls, group in part.groupby("class", sort=True):
        kept = (group["status"] == "kept").to_numpy()
        base = group["station"].map(symbols).fillna("circle").to_numpy(dtype=object)
        symbol = np.where(kept, base, np.char.add(base.astype(str), "-open"))
        fig.add_trace(
            go.Scattergl(
                x=group["x_mm"].to_numpy(),
                y=group["y_mm"].to_numpy(),
                mode="markers",
                name=str(cls),
                legendgroup=f"class:{cls}",
                showlegend=legend,
                marker={
                    "color": colours.get(cls, "#7f7f7f"),
                    "symbol": symbol,
                    "size": 9,
                    "line": {"width": 1, "color": "rgba(0,0,0,0.45)"},
                },
                customdata=custom_data(group),
                hovertemplate=HOVER,
            ),
            row=row,
            col=1,
        )


def _legend_for_stations(fig: go.Figure, symbols: dict[str, str]) -> None:
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


def _lines(fig: go.Figure, view: CoilView) -> None:
    for mark in view.marks:
        if mark["kind"] == "weld":
            for row in (1, 2):
                fig.add_vline(
                    x=mark["x_mm"], line={"color": "#c0392b", "dash": "dash", "width": 2}, row=row, col=1
                )
            fig.add_annotation(
                x=mark["x_mm"],
                y=1.0,
                yref="paper",
                text="weld",
                showarrow=False,
                font={"color": "#c0392b", "size": 11},
                yanchor="bottom",
            )
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
                    col=1,
                )
    for cut in view.cut_lines:
        for row in (1, 2):
            fig.add_vline(
                x=cut["x_mm"], line={"color": "#111", "dash": "dashdot", "width": 1.5}, row=row, col=1
            )
        fig.add_annotation(
            x=cut["x_mm"],
            y=0.5,
            yref="paper",
            text=cut["label"],
            showarrow=False,
            textangle=-90,
            font={"size": 10, "color": "#111"},
            xshift=-8,
        )
    fig.add_annotation(
        x=0, y=1.0, yref="paper", text="head", showarrow=False, yanchor="bottom", xanchor="left"
    )
    fig.add_annotation(
        x=view.length_mm, y=1.0, yref="paper", text="tail", showarrow=False, yanchor="bottom", xanchor="right"
    )


def _roll_marks(fig: go.Figure, view: CoilView, side: str, row: int) -> None:
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
        fig.add_annotation(
            x=float(xs[0]),
            y=series["y_mm"],
            text=label,
            row=row,
            col=1,
            showarrow=True,
            arrowhead=0,
            ax=40,
            ay=-28,
            font={"color": "#6c3483", "size": 10},
        )


def _highlight(fig: go.Figure, obs: pd.DataFrame, selected_id: int) -> None:
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
