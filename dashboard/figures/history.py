"""Defect history figures: weekly trend per class (defects per km) and position distributions."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.figures.palette import class_colours


def defects_per_km(weekly_counts: pd.DataFrame, km: pd.DataFrame) -> pd.DataFrame:
    """Per week and class: count, km inspected that week and defects per km (NaN where no
    strip was recorded). ``weekly_counts`` has week, class, count; ``km`` has week, km.

    >>> c = pd.DataFrame({"week": ["w1", "w1"], "class": ["a", "b"], "count": [4, 2]})
    >>> defects_per_km(c, pd.DataFrame({"week": ["w1"], "km": [2.0]}))["per_km"].tolist()
    [2.0, 1.0]
    """
    out = weekly_counts.merge(km, on="week", how="left")
    out["per_km"] = out["count"] / out["km"].where(out["km"] > 0)
    return out


def weekly_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Observations (columns ``week`` and ``class``) counted per week and class."""
    if frame.empty:
        return pd.DataFrame(columns=["week", "class", "count"])
    return frame.groupby(["week", "class"], as_index=False).size().rename(columns={"size": "count"})


def trend_figure(per_km: pd.DataFrame, height_px: int = 360) -> go.Figure:
    fig = go.Figure()
    colours = class_colours(per_km["class"]) if len(per_km) else {}
    for cls, part in per_km.sort_values("week").groupby("class", sort=True):
        fig.add_trace(
            go.Scatter(
                x=part["week"],
                y=part["per_km"],
                mode="lines+markers",
                name=str(cls),
                line={"color": colours[cls]},
                customdata=part[["count", "km"]].to_numpy(),
                hovertemplate="week of %{x|%Y-%m-%d}<br>%{y:.2f} defects/km<br>%{customdata[0]} defects on "
                "%{customdata[1]:.2f} km<extra>" + str(cls) + "</extra>",
            )
        )
    fig.update_layout(
        height=height_px,
        margin={"l": 50, "r": 10, "t": 30, "b": 40},
        title="Defects per km per class, by week",
        yaxis_title="defects per km",
        xaxis_title="week (Monday, UTC)",
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def distribution_figure(
    frame: pd.DataFrame, column: str, title: str, axis_title: str, bins: int = 40, height_px: int = 320
) -> go.Figure:
    """Stacked histogram of ``column`` per class."""
    fig = go.Figure()
    colours = class_colours(frame["class"]) if len(frame) else {}
    for cls, part in frame.groupby("class", sort=True):
        fig.add_trace(go.Histogram(x=part[column], name=str(cls), marker_color=colours[cls], nbinsx=bins))
    fig.update_layout(
        barmode="stack",
        height=height_px,
        title=title,
        xaxis_title=axis_title,
        yaxis_title="defects",
        margin={"l": 50, "r": 10, "t": 40, "b": 40},
        showlegend=False,
    )
    return fig
