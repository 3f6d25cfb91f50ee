"""The demo plant's parameters: sizes, steel grades, defect classes, lines and stations.

Everything the simulator draws from is here as plain, frozen values, so a reader sees the plant
in one place and ``docs/plant.md`` can cite it. :func:`plant_params` builds the parameters of a
named size; :func:`validate` rejects impossible values with a clear :class:`InputError`.

>>> p = plant_params("small")
>>> p.n_hot_coils, len(p.stations)
(4, 6)
>>> try:
...     validate(replace(p, hot_length_mm=(-5.0, 10.0)))
... except InputError as exc:
...     print(exc)
plant parameters: field hot_length_mm: lengths must be positive and ordered (min <= max), got (-5.0, 10.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from coilmap.datasplit import NEU_CLASSES
from coilmap.errors import InputError

Side = Literal["top", "bottom"]
ExportKind = Literal["frames", "csv_table", "sqlite_table"]
Orientation = Literal["turn", "flip_cross", "flip_long"]

SIZES: tuple[str, ...] = ("small", "default", "large")

PSEUDO_CLASSES: tuple[str, ...] = ("dirt", "oil", "water")

# Real defects per 100 m of hot strip, per plant class (before the grade factor).
BASE_RATE_PER_100M: dict[str, float] = {
    "crazing": 0.20,
    "inclusion": 0.40,
    "patches": 0.30,
    "pitted_surface": 0.20,
    "rolled-in_scale": 0.40,
    "scratches": 0.30,
}

# Grade -> (share of hot coils, per-class rate factor). Interstitial-free and deep-drawing grades
# show more inclusions (clean-steel sensitive), structural grades more scale and crazing.
GRADES: dict[str, tuple[float, dict[str, float]]] = {
    "DC01": (0.30, {}),
    "DC04": (0.25, {"inclusion": 1.5}),
    "DX54": (0.15, {"inclusion": 2.5, "scratches": 1.3}),
    "S235JR": (0.15, {"rolled-in_scale": 2.0, "crazing": 1.5}),
    "S355MC": (0.15, {"rolled-in_scale": 2.5, "pitted_surface": 1.8, "crazing": 2.0}),
}

# mm on the hot strip per pixel of a NEU source image, per class (the defect's physical size is
# the annotated box times this, times a random factor 0.7..1.3).
SOURCE_MM_PER_PX: dict[str, float] = {
    "crazing": 0.40,
    "inclusion": 0.50,
    "patches": 0.50,
    "pitted_surface": 0.35,
    "rolled-in_scale": 0.45,
    "scratches": 0.80,
}

# How visible a class still is (contrast factor) after the material went through a line.
APPEARANCE: dict[str, dict[str, float]] = {
    "HSM": {},
    "PL": {"rolled-in_scale": 0.8, "crazing": 0.9},
    "TCM": {"rolled-in_scale": 0.6, "crazing": 0.7, "pitted_surface": 0.8, "patches": 0.85},
    "CAL": {"rolled-in_scale": 0.55, "crazing": 0.65, "pitted_surface": 0.75, "patches": 0.8},
    "SL": {"rolled-in_scale": 0.55, "crazing": 0.65, "pitted_surface": 0.75, "patches": 0.8},
}


@dataclass(frozen=True)
class StationSpec:
    """One inspection station: where it sits, what it sees, how it errs, what it exports.

    ``stage`` is the piece it inspects: ``"exit"`` (the coils leaving the line) or ``"entry"``
    (the coils entering it, after the line's orientation). ``y_axis`` is the direction the
    camera's y grows toward (``"os"`` or ``"ds"``; bottom cameras often see the strip mirrored).
    """

    name: str
    line: str
    side: Side
    stage: Literal["entry", "exit"]
    export: ExportKind
    vendor: str
    y_axis: Literal["os", "ds"]
    mm_per_px_x: float
    mm_per_px_y: float
    scale_err_sd: float  # sd of the encoder scale error (per unit)
    offset_mm: tuple[float, float]  # encoder offset range at the head
    slip_amp: float  # amplitude of the slowly varying part of the scale error (per unit)
    pos_noise_mm: float  # sd of a single position reading along the length
    wander_mm: float  # amplitude of lateral wander
    calib_err_sd: float  # sd of the across-width calibration error (per unit)
    miss_rate: float
    pseudo_per_100m: dict[str, float]
    noise_sd: float  # image noise (grey levels in [0, 1])
    contrast: float  # defect contrast factor of this camera
    blur_px: float  # optical blur (condensation, focus)
    haze: float  # veiling glare of a wet or dirty window, 0..1
    class_accuracy: float  # vendor classifier: share of real defects given the right class


@dataclass(frozen=True)
class PlantParams:
    """All parameters of one simulated plant (one size)."""

    size: str
    n_hot_coils: int
    hot_length_mm: tuple[float, float]
    hot_widths_mm: tuple[float, ...]
    hot_thickness_mm: tuple[float, float]
    cold_thickness_mm: tuple[float, float]
    real_rate_scale: float
    pseudo_rate_scale: float
    cluster_share: float  # share of hot coils with a defect cluster
    severe_share: float  # share of hot coils with one severe rare defect
    hsm_rollmark_share: float  # share of hot coils marked by a damaged work roll
    tcm_rollmark_share: float  # share of cold coils marked by a damaged work roll
    hsm_roll_diameter_mm: float
    tcm_roll_diameter_mm: float
    pl_crop_mm: tuple[float, float]  # head / tail crop range at the pickling line
    pl_trim_mm: tuple[float, float]  # side trim per side range
    pl_weld_scrap_mm: float  # scrap cut around a weld at the pickling exit shear
    pl_join_share: float  # share of welds kept inside a pickled coil (coupled PL-TCM)
    pl_hole_spacing_mm: float
    cal_crop_mm: tuple[float, float]
    cal_weld_scrap_mm: float
    cal_max_coil_mm: float  # the CAL exit shear divides longer strip sections
    cal_hole_spacing_mm: float
    skin_pass_elongation: float
    sl_edge_trim_mm: tuple[float, float]
    sl_bands: tuple[int, int]
    weld_group: int  # coils welded into one continuous strip at PL and CAL
    frame_rows: int  # rows (and columns) of one camera frame
    blank_frame_ratio: float  # defect-free frames exported per frame with something on it
    edge_sample_mm: float
    images: bool
    orientations: dict[str, Orientation] = field(default_factory=dict)
    stations: tuple[StationSpec, ...] = ()


def _stations() -> tuple[StationSpec, ...]:
    hsm = StationSpec(
        name="HSM-T", line="HSM", side="top", stage="exit", export="frames", vendor="coilmap",
        y_axis="os", mm_per_px_x=1.0, mm_per_px_y=1.5, scale_err_sd=0.004,
        offset_mm=(200.0, 1500.0), slip_amp=0.00005, pos_noise_mm=1.5, wander_mm=40.0,
        calib_err_sd=0.004, miss_rate=0.08, pseudo_per_100m={"water": 0.6},
        noise_sd=0.035, contrast=1.0, blur_px=0.6, haze=0.10, class_accuracy=0.0,
    )
    pl_t = StationSpec(
        name="PL-T", line="PL", side="top", stage="exit", export="csv_table", vendor="SurfSpec",
        y_axis="os", mm_per_px_x=0.5, mm_per_px_y=0.5, scale_err_sd=0.003,
        offset_mm=(100.0, 900.0), slip_amp=0.0001, pos_noise_mm=2.0, wander_mm=15.0,
        calib_err_sd=0.002, miss_rate=0.05, pseudo_per_100m={"dirt": 0.25, "oil": 0.15},
        noise_sd=0.02, contrast=1.0, blur_px=0.4, haze=0.0, class_accuracy=0.82,
    )
    pl_b = replace(pl_t, name="PL-B", side="bottom", y_axis="ds", miss_rate=0.07,
                   pseudo_per_100m={"dirt": 0.35, "water": 0.15}, class_accuracy=0.78)
    cal_t = StationSpec(
        name="CAL-T", line="CAL", side="top", stage="exit", export="frames", vendor="coilmap",
        y_axis="os", mm_per_px_x=1.0, mm_per_px_y=1.0, scale_err_sd=0.002,
        offset_mm=(300.0, 2000.0), slip_amp=0.0001, pos_noise_mm=2.0, wander_mm=10.0,
        calib_err_sd=0.002, miss_rate=0.04, pseudo_per_100m={"dirt": 0.04, "oil": 0.03},
        noise_sd=0.02, contrast=1.0, blur_px=0.5, haze=0.0, class_accuracy=0.0,
    )
    # The bottom camera's window fogs up: blur, haze, more misses and water marks.
    cal_b = replace(cal_t, name="CAL-B", side="bottom", y_axis="os", miss_rate=0.12,
                    pseudo_per_100m={"water": 0.06, "dirt": 0.02}, noise_sd=0.03,
                    contrast=0.75, blur_px=1.6, haze=0.25)
    sl_t = StationSpec(
        name="SL-T", line="SL", side="top", stage="entry", export="sqlite_table",
        vendor="InspeX", y_axis="os", mm_per_px_x=0.4, mm_per_px_y=0.4, scale_err_sd=0.003,
        offset_mm=(50.0, 600.0), slip_amp=0.0001, pos_noise_mm=2.0, wander_mm=8.0,
        calib_err_sd=0.002, miss_rate=0.06, pseudo_per_100m={"oil": 0.05, "dirt": 0.03},
        noise_sd=0.02, contrast=1.0, blur_px=0.4, haze=0.0, class_accuracy=0.85,
    )
    return (hsm, pl_t, pl_b, cal_t, cal_b, sl_t)


def plant_params(size: str) -> PlantParams:
    """The parameters of the plant of one size: ``small``, ``default`` or ``large``."""
    if size not in SIZES:
        raise InputError(f"unknown plant size {size!r} (one of {', '.join(SIZES)})",
                         field="size")
    base = PlantParams(
        size="default", n_hot_coils=20, hot_length_mm=(450_000.0, 700_000.0),
        hot_widths_mm=(1250.0, 1500.0), hot_thickness_mm=(2.5, 4.0),
        cold_thickness_mm=(0.6, 1.2), real_rate_scale=1.0, pseudo_rate_scale=1.0,
        cluster_share=0.2, severe_share=0.1, hsm_rollmark_share=0.1, tcm_rollmark_share=0.1,
        hsm_roll_diameter_mm=720.0, tcm_roll_diameter_mm=480.0,
        pl_crop_mm=(1500.0, 4000.0), pl_trim_mm=(8.0, 20.0), pl_weld_scrap_mm=600.0,
        pl_join_share=0.3, pl_hole_spacing_mm=150_000.0, cal_crop_mm=(500.0, 2000.0),
        cal_weld_scrap_mm=1500.0, cal_max_coil_mm=2_200_000.0, cal_hole_spacing_mm=400_000.0,
        skin_pass_elongation=1.008, sl_edge_trim_mm=(5.0, 12.0), sl_bands=(2, 4), weld_group=5,
        frame_rows=512, blank_frame_ratio=0.1, edge_sample_mm=10_000.0, images=True,
        orientations={"PL": "turn", "TCM": "flip_cross", "CAL": "flip_cross", "SL": "turn"},
        stations=_stations(),
    )
    if size == "small":
        return replace(base, size="small", n_hot_coils=4, hot_length_mm=(60_000.0, 90_000.0),
                       real_rate_scale=3.0, pseudo_rate_scale=2.0, cluster_share=0.5,
                       severe_share=0.5, hsm_rollmark_share=0.5, tcm_rollmark_share=0.5,
                       pl_hole_spacing_mm=30_000.0, cal_max_coil_mm=250_000.0,
                       cal_hole_spacing_mm=60_000.0, weld_group=2, blank_frame_ratio=0.1)
    if size == "large":
        return replace(base, size="large", n_hot_coils=1000, real_rate_scale=5.0,
                       pseudo_rate_scale=60.0, images=False)
    return base


def override(p: PlantParams, assignments: list[str]) -> PlantParams:
    """``p`` with ``name=value`` assignments (numbers; ``a,b`` for ranges), for the CLI.

    >>> override(plant_params("small"), ["n_hot_coils=6", "pl_crop_mm=1000,2500"]).pl_crop_mm
    (1000.0, 2500.0)
    >>> override(plant_params("small"), ["colour=blue"])
    Traceback (most recent call last):
    ...
    coilmap.errors.InputError: --set: field colour: no such plant parameter
    """
    changes: dict[str, object] = {}
    for text in assignments:
        name, sep, value = text.partition("=")
        name = name.strip()
        current = getattr(p, name, None)
        if not sep or name in ("size", "stations", "orientations") or current is None:
            raise InputError("no such plant parameter" if sep else "expected name=value",
                             source="--set", field=name or text)
        try:
            if isinstance(current, bool):
                if value.strip().lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                changes[name] = value.strip().lower() in ("true", "1")
            elif isinstance(current, tuple):
                kind = int if isinstance(current[0], int) else float
                changes[name] = tuple(kind(v) for v in value.split(","))
            else:
                changes[name] = type(current)(value)
        except ValueError:
            raise InputError(f"not a valid value: {value!r}", source="--set",
                             field=name) from None
        if isinstance(current, tuple) and len(changes[name]) != len(current) and name != \
                "hot_widths_mm":
            raise InputError(f"needs {len(current)} comma-separated values", source="--set",
                             field=name)
    return replace(p, **changes)


def _check_range(name: str, pair: tuple[float, float], *, allow_zero: bool = False) -> None:
    lo, hi = pair
    bad = lo < 0 or hi < 0 or lo > hi or (not allow_zero and lo == 0)
    if bad:
        what = "non-negative" if allow_zero else "positive"
        raise InputError(f"lengths must be {what} and ordered (min <= max), got {pair}",
                         source="plant parameters", field=name)


def validate(p: PlantParams) -> PlantParams:
    """``p`` itself if every value is physically possible; else :class:`InputError`."""
    if p.n_hot_coils < 1:
        raise InputError(f"need at least one hot coil, got {p.n_hot_coils}",
                         source="plant parameters", field="n_hot_coils")
    _check_range("hot_length_mm", p.hot_length_mm)
    _check_range("hot_thickness_mm", p.hot_thickness_mm)
    _check_range("cold_thickness_mm", p.cold_thickness_mm)
    for name in ("pl_crop_mm", "pl_trim_mm", "cal_crop_mm", "sl_edge_trim_mm"):
        _check_range(name, getattr(p, name), allow_zero=True)
    if not p.hot_widths_mm or min(p.hot_widths_mm) <= 0:
        raise InputError(f"widths must be positive, got {p.hot_widths_mm}",
                         source="plant parameters", field="hot_widths_mm")
    if p.cold_thickness_mm[1] >= p.hot_thickness_mm[0]:
        raise InputError("cold rolling must make the strip thinner: cold thickness "
                         f"{p.cold_thickness_mm} must stay below hot {p.hot_thickness_mm}",
                         source="plant parameters", field="cold_thickness_mm")
    crops = p.pl_crop_mm[1] * 2 + 2 * p.pl_weld_scrap_mm
    if crops >= p.hot_length_mm[0]:
        raise InputError(f"head/tail crops and weld scrap ({crops} mm) would consume a whole "
                         f"hot coil of {p.hot_length_mm[0]} mm", source="plant parameters",
                         field="pl_crop_mm")
    if 2 * p.pl_trim_mm[1] + 2 * p.sl_edge_trim_mm[1] >= min(p.hot_widths_mm) / 2:
        raise InputError("side trims would cut away half the strip width",
                         source="plant parameters", field="pl_trim_mm")
    for name in ("real_rate_scale", "pseudo_rate_scale", "hsm_roll_diameter_mm",
                 "tcm_roll_diameter_mm", "pl_hole_spacing_mm", "cal_hole_spacing_mm",
                 "cal_max_coil_mm", "edge_sample_mm"):
        value = getattr(p, name)
        if not value > 0:
            raise InputError(f"must be positive, got {value}", source="plant parameters",
                             field=name)
    for name in ("cluster_share", "severe_share", "hsm_rollmark_share", "tcm_rollmark_share",
                 "pl_join_share"):
        value = getattr(p, name)
        if not 0.0 <= value <= 1.0:
            raise InputError(f"a share must lie in [0, 1], got {value}",
                             source="plant parameters", field=name)
    if not 0.0 <= p.blank_frame_ratio <= 10.0:
        raise InputError(f"must lie in [0, 10], got {p.blank_frame_ratio}",
                         source="plant parameters", field="blank_frame_ratio")
    if p.skin_pass_elongation < 1.0:
        raise InputError(f"rolling cannot shorten the strip, got {p.skin_pass_elongation}",
                         source="plant parameters", field="skin_pass_elongation")
    if p.weld_group < 1 or p.frame_rows < 16 or p.sl_bands[0] < 1 or p.sl_bands[0] > p.sl_bands[1]:
        raise InputError("weld_group >= 1, frame_rows >= 16 and 1 <= bands min <= max required",
                         source="plant parameters", field="weld_group")
    for s in p.stations:
        if not 0.0 <= s.miss_rate < 1.0:
            raise InputError(f"miss rate must lie in [0, 1), got {s.miss_rate}",
                             source=f"station {s.name}", field="miss_rate")
        if s.mm_per_px_x <= 0 or s.mm_per_px_y <= 0:
            raise InputError("resolution must be positive", source=f"station {s.name}",
                             field="mm_per_px_x")
        if s.line not in ("HSM", "PL", "CAL", "SL"):
            raise InputError(f"no inspection on line {s.line!r}", source=f"station {s.name}",
                             field="line")
    for cls in BASE_RATE_PER_100M:
        assert cls in NEU_CLASSES
    return p
