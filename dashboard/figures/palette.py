"""Colours and symbols shared by every figure, so a class looks the same on every page."""

from __future__ import annotations

from collections.abc import Iterable

PLANT_CLASS_COLOURS = {
    "crazing": "#1f77b4",
    "inclusion": "#d62728",
    "patches": "#ff7f0e",
    "pitted_surface": "#9467bd",
    "rolled-in_scale": "#8c564b",
    "scratches": "#2ca02c",
    "unclassified": "#7f7f7f",
}
_EXTRA = ("#e377c2", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94")
# Plotly's numeric marker codes (+100: the open variant): numeric arrays are validated as one
# block, a list of names one string at a time (a third of a second for 4,000 points).
SYMBOL_CODES = {"circle": 0, "square": 1, "diamond": 2, "cross": 3, "x": 4, "triangle-up": 5,
                "triangle-down": 6, "pentagon": 13, "hexagon": 14, "star": 17, "star-square": 21,
                "hourglass": 25}  # fmt: skip
OPEN = 100
STATION_SYMBOLS = (
    "circle",
    "square",
    "diamond",
    "triangle-up",
    "cross",
    "x",
    "star",
    "triangle-down",
    "pentagon",
    "hexagon",
    "star-square",
    "hourglass",
)


def class_colours(classes: Iterable[str]) -> dict[str, str]:
    """A colour per class: the plant classes fixed, others from a spare list in sorted order.

    >>> class_colours(["scratches", "oil"])["scratches"], class_colours(["oil"])["oil"]
    ('#2ca02c', '#e377c2')
    """
    out: dict[str, str] = {}
    spare = iter(_EXTRA * 10)
    for c in sorted(set(classes)):
        out[c] = PLANT_CLASS_COLOURS.get(c) or next(spare)
    return out


def station_symbols(stations: Iterable[str]) -> dict[str, str]:
    """A marker symbol per station, in sorted order (stable while the station list is)."""
    return {s: STATION_SYMBOLS[i % len(STATION_SYMBOLS)] for i, s in enumerate(sorted(set(stations)))}
