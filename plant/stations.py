"""What an inspection station sees of one piece (pure: numpy, pandas and a generator).

A station measures along the length with its own encoder and across with its own camera:

    x_obs = offset + (1 + scale_err) * x + slip(x) + noise
    y_obs = wander(x) + sign * (1 + calib_err) * y + noise

where ``slip`` is a slowly varying part of the scale error (roll slip), ``wander`` the strip's
lateral motion, and ``sign`` is -1 for a camera whose y grows toward the drive side. It sees
the reference marks of the piece (head, tail, seams, holes) in the same encoder frame, the strip
edges, the real defects on its surface (missing some at its miss rate), and pseudo-defects
(dirt, oil, water) that exist at this station only.

>>> enc = Encoder(offset_mm=500.0, scale_err=0.002, slip_amp=0.0, slip_period_mm=1e5,
...               slip_phase=0.0, wander_mm=0.0, wander_period_mm=1e5, wander_phase=0.0,
...               calib_err=0.0, y_sign=-1.0)
>>> float(enc.x_obs(np.array([1000.0]))[0]), float(enc.y_cam(np.array([0.0]), np.array([100.0]))[0])
(1502.0, -100.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from plant.ledger import PieceState
from plant.params import PSEUDO_CLASSES, StationSpec

# The vendors' own class names (plant class or pseudo class -> vendor label).
VENDOR_CLASSES: dict[str, dict[str, str]] = {
    "SurfSpec": {
        "crazing": "Crazing", "inclusion": "Sliver/Inclusion", "patches": "Scale patch",
        "pitted_surface": "Pits", "rolled-in_scale": "Rolled-in scale", "scratches": "Scratch",
        "dirt": "Dirt", "oil": "Oil stain", "water": "Water drop",
    },
    "InspeX": {
        "crazing": "CRZ", "inclusion": "INC", "patches": "PAT", "pitted_surface": "PIT",
        "rolled-in_scale": "RIS", "scratches": "SCR", "dirt": "DRT", "oil": "OIL",
        "water": "WAT",
    },
}
# InspeX numbers its classes; the SQLite export carries both.
INSPEX_CODES: dict[str, int] = {"CRZ": 11, "INC": 12, "PAT": 13, "PIT": 14, "RIS": 15,
                                "SCR": 16, "DRT": 91, "OIL": 92, "WAT": 93}

# Which plant classes a vendor classifier confuses a class with.
CONFUSED_WITH: dict[str, tuple[str, ...]] = {
    "crazing": ("pitted_surface", "rolled-in_scale"),
    "inclusion": ("scratches", "patches"),
    "patches": ("rolled-in_scale", "pitted_surface"),
    "pitted_surface": ("crazing", "patches"),
    "rolled-in_scale": ("patches", "crazing"),
    "scratches": ("inclusion",),
    "dirt": ("patches", "pitted_surface"),
    "oil": ("patches",),
    "water": ("pitted_surface", "patches"),
}
# A pseudo-defect's size range (along, across) in mm.
PSEUDO_SIZE_MM: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "dirt": ((4.0, 25.0), (4.0, 25.0)),
    "oil": ((40.0, 300.0), (10.0, 40.0)),
    "water": ((15.0, 60.0), (15.0, 60.0)),
}


@dataclass(frozen=True)
class Encoder:
    """One station's length and width measurement on one piece."""

    offset_mm: float
    scale_err: float
    slip_amp: float
    slip_period_mm: float
    slip_phase: float
    wander_mm: float
    wander_period_mm: float
    wander_phase: float
    calib_err: float
    y_sign: float

    def x_obs(self, x_mm: np.ndarray) -> np.ndarray:
        w = 2 * math.pi / self.slip_period_mm
        slip = self.slip_amp / w * (np.sin(w * x_mm + self.slip_phase) - math.sin(self.slip_phase))
        return self.offset_mm + (1 + self.scale_err) * x_mm + slip

    def wander(self, x_mm: np.ndarray) -> np.ndarray:
        w = 2 * math.pi / self.wander_period_mm
        return self.wander_mm * np.sin(w * x_mm + self.wander_phase)

    def y_cam(self, x_mm: np.ndarray, y_mm: np.ndarray) -> np.ndarray:
        return self.wander(x_mm) + self.y_sign * (1 + self.calib_err) * y_mm


def station_scale_error(rng: np.random.Generator, spec: StationSpec) -> tuple[float, float]:
    """The station's own (constant) encoder scale error and camera calibration error."""
    return float(rng.normal(0.0, spec.scale_err_sd)), float(rng.normal(0.0, spec.calib_err_sd))


def piece_encoder(rng: np.random.Generator, spec: StationSpec, scale_err: float,
                  calib_err: float) -> Encoder:
    """The station's encoder for one piece (offset, slip and wander differ per piece)."""
    return Encoder(
        offset_mm=float(rng.uniform(*spec.offset_mm)),
        scale_err=scale_err,
        slip_amp=spec.slip_amp,
        slip_period_mm=float(rng.uniform(200_000.0, 600_000.0)),
        slip_phase=float(rng.uniform(0, 2 * math.pi)),
        wander_mm=float(rng.uniform(0.3, 1.0) * spec.wander_mm),
        wander_period_mm=float(rng.uniform(40_000.0, 150_000.0)),
        wander_phase=float(rng.uniform(0, 2 * math.pi)),
        calib_err=calib_err,
        y_sign=1.0 if spec.y_axis == "os" else -1.0,
    )


Columns = dict[str, np.ndarray]


def concat_columns(parts: list[Columns]) -> Columns:
    """Tables held as dicts of equal-length arrays, stacked (far cheaper than many DataFrames)."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def mark_sightings(rng: np.random.Generator, enc: Encoder, piece: PieceState) -> Columns:
    """Head, tail, seams and holes of the piece as the station's encoder saw them."""
    ids = [f"{piece.piece_id}:head", f"{piece.piece_id}:tail", *piece.marks]
    x = np.array([0.0, piece.length_mm, *piece.marks.values()])
    order = np.argsort(x, kind="stable")
    x_obs = enc.x_obs(x[order]) + rng.normal(0.0, 0.5, len(x))
    return {"mark_id": np.array(ids, dtype=object)[order], "x_true_mm": x[order],
            "x_obs_mm": np.round(x_obs, 1)}


def edge_sightings(rng: np.random.Generator, enc: Encoder, piece: PieceState,
                   step_mm: float) -> Columns:
    """The strip edges in the camera's y frame, every ``step_mm`` along the piece."""
    x = np.append(np.arange(0.0, piece.length_mm, step_mm), piece.length_mm)
    half = np.full(len(x), piece.width_mm / 2)
    os_ = enc.y_cam(x, half) + rng.normal(0.0, 0.5, len(x))
    ds = enc.y_cam(x, -half) + rng.normal(0.0, 0.5, len(x))
    return {"x_obs_mm": np.round(enc.x_obs(x), 1), "os_edge_mm": np.round(os_, 1),
            "ds_edge_mm": np.round(ds, 1)}


def real_sightings(rng: np.random.Generator, spec: StationSpec, enc: Encoder,
                   piece: PieceState) -> Columns:
    """Every real defect on the station's surface of the piece, with ``seen`` (not missed)."""
    d = piece.defects
    on_side = d.top if spec.side == "top" else ~d.top
    idx = np.flatnonzero(on_side)
    n = len(idx)
    x, y = d.x_mm[idx], d.y_mm[idx]
    length = d.x1_mm[idx] - d.x0_mm[idx]
    width = d.y1_mm[idx] - d.y0_mm[idx]
    seen = rng.random(n) >= spec.miss_rate
    x_obs = enc.x_obs(x) + rng.normal(0.0, spec.pos_noise_mm, n)
    y_obs = enc.y_cam(x, y) + rng.normal(0.0, 1.0, n)
    return {
        "kind": np.full(n, "real", dtype=object), "defect_id": d.defect_id[idx], "seen": seen,
        "x_true_mm": x, "y_true_mm": y, "length_mm": length, "width_mm": width,
        "x_obs_mm": np.round(x_obs, 1), "y_obs_mm": np.round(y_obs, 1),
        "length_obs_mm": np.round(length * (1 + enc.scale_err), 1),
        "width_obs_mm": np.round(width * (1 + enc.calib_err), 1),
        "flip_x": d.flip_x[idx], "flip_y": d.flip_y[idx],
        "pseudo_class": np.full(n, "", dtype=object),
    }


def pseudo_sightings(rng: np.random.Generator, spec: StationSpec, enc: Encoder,
                     piece: PieceState, rate_scale: float) -> Columns:
    """Dirt, oil and water marks: seen by this station only, never again downstream."""
    parts = []
    for cls in PSEUDO_CLASSES:
        rate = spec.pseudo_per_100m.get(cls, 0.0) * rate_scale
        n = int(rng.poisson(rate * piece.length_mm / 100_000.0))
        (l0, l1), (w0, w1) = PSEUDO_SIZE_MM[cls]
        length = rng.uniform(l0, l1, n)
        width = rng.uniform(w0, w1, n)
        x = rng.uniform(length / 2, piece.length_mm - length / 2, n) if n else np.zeros(0)
        half = piece.width_mm / 2 - width / 2
        y = rng.uniform(-half, half, n) if n else np.zeros(0)
        no = np.zeros(n, dtype=bool)
        parts.append({
            "kind": np.full(n, "pseudo", dtype=object), "defect_id": np.full(n, -1),
            "seen": ~no, "x_true_mm": np.round(x, 1), "y_true_mm": np.round(y, 1),
            "length_mm": np.round(length, 1), "width_mm": np.round(width, 1),
            "x_obs_mm": np.round(enc.x_obs(x) + rng.normal(0.0, spec.pos_noise_mm, n), 1),
            "y_obs_mm": np.round(enc.y_cam(x, y) + rng.normal(0.0, 1.0, n), 1),
            "length_obs_mm": np.round(length * (1 + enc.scale_err), 1),
            "width_obs_mm": np.round(width * (1 + enc.calib_err), 1),
            "flip_x": no, "flip_y": no, "pseudo_class": np.full(n, cls, dtype=object),
        })
    return concat_columns(parts)


def vendor_labels(rng: np.random.Generator, vendor: str, classes: np.ndarray,
                  accuracy: float) -> tuple[np.ndarray, np.ndarray]:
    """The vendor classifier's label and confidence for each true (plant or pseudo) class.

    Real defects get the right class with probability ``accuracy``; pseudo-defects get their
    pseudo class with probability 0.75, else a real class (the false alarms of practice).
    """
    names = VENDOR_CLASSES[vendor]
    n = len(classes)
    right = rng.random(n) < np.where(np.isin(classes, PSEUDO_CLASSES), 0.75, accuracy)
    labels, conf = np.empty(n, dtype=object), np.empty(n)
    u = rng.random(n)
    for i, cls in enumerate(classes):
        if right[i]:
            labels[i] = names[cls]
            conf[i] = 0.55 + 0.44 * u[i] ** 0.5
        else:
            others = CONFUSED_WITH[cls]
            labels[i] = names[others[int(u[i] * len(others)) % len(others)]]
            conf[i] = 0.35 + 0.45 * u[i]
    return labels, np.round(conf, 3)
