"""True defects as the mills make them (pure: numpy and a random generator, no I/O).

A hot coil gets defects of the six NEU classes at rates that depend on class and steel grade,
sometimes a cluster (many inclusions or pits in a few metres), rarely one severe defect (three
times the size), and, while a work roll is damaged, roll marks that repeat at the roll's
circumference. The cold mill can add its own roll marks. Each defect takes its picture and
size from one annotated box of the render part (:mod:`plant.crops`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from plant.crops import Catalogue
from plant.material import Defects
from plant.params import BASE_RATE_PER_100M, GRADES, SOURCE_MM_PER_PX, PlantParams

CATALOGUE_COLUMNS = ("defect_id", "kind", "true_class", "severity", "origin_piece",
                     "origin_line", "src_stem", "src_x0", "src_y0", "src_x1", "src_y1",
                     "length_mm", "width_mm")


@dataclass
class DefectBook:
    """The catalogue of physical defects (one row each) and the next free id."""

    rows: list[tuple] = field(default_factory=list)
    next_id: int = 1

    def add(self, rng: np.random.Generator, cat: Catalogue, *, kind: str, cls: str,
            piece: str, line: str, x_mm: np.ndarray, y_mm: np.ndarray, top: np.ndarray,
            width_limit_mm: float, size_factor: float = 1.0,
            entry: int | None = None) -> Defects:
        """Defects of one class at the given centres; pictures drawn from the catalogue."""
        n = len(x_mm)
        if n == 0:
            return Defects.empty()
        choices = cat.of_class(cls)
        picks = np.full(n, entry) if entry is not None else rng.choice(choices, size=n)
        box = cat.box_px[picks]
        # One roll makes one imprint: a roll mark's repeats share their size.
        spread = rng.uniform(0.7, 1.3, size=1 if entry is not None else n)
        scale = SOURCE_MM_PER_PX[cls] * size_factor * np.broadcast_to(spread, (n,))
        len_mm = np.round((box[:, 3] - box[:, 1]) * scale, 1)  # image rows run along x
        wid_mm = np.minimum(np.round((box[:, 2] - box[:, 0]) * scale, 1), width_limit_mm / 3)
        half = width_limit_mm / 2 - wid_mm / 2 - 1.0
        y = np.clip(y_mm, -half, half)
        ids = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        self.next_id += n
        severity = "severe" if size_factor > 1 else "normal"
        for k in range(n):
            self.rows.append((int(ids[k]), kind, cls, severity, piece, line,
                              str(cat.stem[picks[k]]), *(int(v) for v in box[k]),
                              float(len_mm[k]), float(wid_mm[k])))
        return Defects.from_boxes(ids, np.round(x_mm, 1), np.round(y, 1), len_mm, wid_mm, top)


def choose_grade(rng: np.random.Generator) -> str:
    names = list(GRADES)
    shares = np.array([GRADES[g][0] for g in names])
    return names[int(rng.choice(len(names), p=shares / shares.sum()))]


def hot_coil_defects(rng: np.random.Generator, book: DefectBook, cat: Catalogue,
                     p: PlantParams, *, piece: str, grade: str, length_mm: float,
                     width_mm: float) -> Defects:
    """All true defects of one hot coil, in its frame."""
    factors = GRADES[grade][1]
    parts = []
    margin = 500.0
    for cls, rate in BASE_RATE_PER_100M.items():
        lam = rate * factors.get(cls, 1.0) * p.real_rate_scale * length_mm / 100_000.0
        n = int(rng.poisson(lam))
        x = rng.uniform(margin, length_mm - margin, n)
        y = rng.uniform(-width_mm / 2, width_mm / 2, n)
        top = rng.random(n) < 0.5
        parts.append(book.add(rng, cat, kind="random", cls=cls, piece=piece, line="HSM",
                              x_mm=x, y_mm=y, top=top, width_limit_mm=width_mm))
    if rng.random() < p.cluster_share:
        cls = "inclusion" if rng.random() < 0.5 else "pitted_surface"
        n = int(rng.integers(8, 16))
        cx = rng.uniform(0.1, 0.9) * length_mm
        cy = rng.uniform(-0.3, 0.3) * width_mm
        x = cx + rng.uniform(-1500.0, 1500.0, n)
        y = cy + rng.uniform(-150.0, 150.0, n)
        top = np.full(n, rng.random() < 0.5)
        parts.append(book.add(rng, cat, kind="cluster", cls=cls, piece=piece, line="HSM",
                              x_mm=x, y_mm=y, top=top, width_limit_mm=width_mm))
    if rng.random() < p.severe_share:
        cls = "scratches" if rng.random() < 0.5 else "inclusion"
        x = rng.uniform(0.1, 0.9, 1) * length_mm
        y = rng.uniform(-0.3, 0.3, 1) * width_mm
        parts.append(book.add(rng, cat, kind="severe", cls=cls, piece=piece, line="HSM",
                              x_mm=x, y_mm=y, top=rng.random(1) < 0.5,
                              width_limit_mm=width_mm, size_factor=3.0))
    if rng.random() < p.hsm_rollmark_share:
        parts.append(roll_marks(rng, book, cat, piece=piece, line="HSM", cls="patches",
                                length_mm=length_mm, width_mm=width_mm,
                                roll_diameter_mm=p.hsm_roll_diameter_mm, period_factor=1.0))
    return Defects.concat(parts)


def roll_marks(rng: np.random.Generator, book: DefectBook, cat: Catalogue, *, piece: str,
               line: str, cls: str, length_mm: float, width_mm: float,
               roll_diameter_mm: float, period_factor: float) -> Defects:
    """Marks of one damaged roll: the same imprint every ``pi * D`` (times later elongation)."""
    period = math.pi * roll_diameter_mm * period_factor
    n = int(rng.integers(8, 16))
    start = rng.uniform(0.05, 0.95) * max(length_mm - n * period, 0.0) + period / 2
    x = start + period * np.arange(n)
    x = x[x < length_mm - period / 2]
    y = np.full(len(x), rng.uniform(-0.35, 0.35) * width_mm)
    top = np.full(len(x), rng.random() < 0.5)
    entry = int(rng.choice(cat.of_class(cls)))
    return book.add(rng, cat, kind="rollmark", cls=cls, piece=piece, line=line, x_mm=x,
                    y_mm=y, top=top, width_limit_mm=width_mm, entry=entry)
