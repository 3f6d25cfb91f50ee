"""The plant's route: hot strip mill -> pickling -> tandem cold mill -> annealing -> slitting.

Each line is a function that consumes the pieces the previous line made and performs its
operations on the :class:`~plant.ledger.Ledger` (events and true physics in one step):

- **HSM** makes hot coils ``H0001`` ... with their true defects (:mod:`plant.defects`).
- **PL** (pickling) sets each coil on the payoff reel (``orient``, per line configuration),
  crops head and tail, welds a group of coils into one strip ``PLS001``, side-trims it
  (``PLS001.t``), punches reference holes, and divides it at the exit shear into pickled coils
  ``P00001`` ...: most welds are cut out with scrap, some stay inside a coil (coupled PL-TCM).
- **TCM** (tandem cold mill) unwinds each pickled coil and rolls it to ``C00001``: a
  non-uniform elongation (thick, less elongated head and tail), slightly narrower; a damaged
  work roll sometimes leaves roll marks.
- **CAL** (continuous annealing with skin pass) welds cold coils into ``CLS001``, elongates
  them a little in the skin pass (``CLS001.k``), punches holes, cuts out its own welds with
  scrap and divides long sections into annealed coils ``A00001``.
- **SL** (slitting) sets each annealed coil up (``A00001.SLo``), trims the edges and slits it
  into bands ``S00001-1`` ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from plant.crops import Catalogue
from plant.defects import DefectBook, choose_grade, hot_coil_defects, roll_marks
from plant.ledger import Ledger
from plant.material import Defects
from plant.params import PlantParams

# Line speeds (mm/s) for the time stamps of events and observations.
SPEED_MM_S: dict[str, float] = {"HSM": 10_000.0, "PL": 3_000.0, "TCM": 12_000.0,
                                "CAL": 5_000.0, "SL": 8_000.0}
# Each line starts this long (s) after the previous one began.
LINE_START_S: dict[str, float] = {"HSM": 0.0, "PL": 86_400.0, "TCM": 2 * 86_400.0,
                                  "CAL": 3 * 86_400.0, "SL": 5 * 86_400.0}
# Cold rolling spreads the strip very little; one factor keeps a pickled strip's coils (and
# so the coils welded together at CAL) at one width.
TCM_WIDTH_FACTOR = 0.998


@dataclass
class Route:
    """The plant after every line ran: ledger, defect book, and the pieces at each stage."""

    ledger: Ledger
    book: DefectBook
    stage: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    start_s: dict[str, float] = field(default_factory=dict)  # piece -> time its head passed


def _rng(seed: int, line: str) -> np.random.Generator:
    return np.random.default_rng([seed, sum(ord(c) << (8 * i) for i, c in enumerate(line))])


def run_plant(p: PlantParams, cat: Catalogue, seed: int) -> Route:
    """Every line of the plant, in order, from a seed (same seed, same plant)."""
    route = Route(Ledger(), DefectBook())
    hot = _hot_mill(route, p, cat, _rng(seed, "HSM"))
    pickled = _pickling(route, p, hot, _rng(seed, "PL"))
    cold = _cold_mill(route, p, cat, pickled, _rng(seed, "TCM"))
    annealed = _annealing(route, p, cold, _rng(seed, "CAL"))
    _slitting(route, p, annealed, _rng(seed, "SL"))
    return route


def _stage(route: Route, line: str, where: str, piece: str, time_s: float) -> None:
    route.stage.setdefault((line, where), []).append(piece)
    route.start_s[piece] = time_s


def _hot_mill(route: Route, p: PlantParams, cat: Catalogue,
              rng: np.random.Generator) -> list[str]:
    led, out = route.ledger, []
    t = LINE_START_S["HSM"]
    for i in range(p.n_hot_coils):
        pid = f"H{i + 1:04d}"
        # Width campaigns: the mill rolls a weld group's worth of coils at one width.
        width = p.hot_widths_mm[(i // p.weld_group) % len(p.hot_widths_mm)]
        length = round(float(rng.uniform(*p.hot_length_mm)))
        thickness = round(float(rng.uniform(*p.hot_thickness_mm)), 2)
        grade = choose_grade(rng)
        defects = hot_coil_defects(rng, route.book, cat, p, piece=pid, grade=grade,
                                   length_mm=length, width_mm=width)
        led.create(pid, length, width, line="HSM", time_s=t, grade=grade,
                   thickness_mm=thickness, defects=defects, coil_no=f"HB{26000 + i + 1}")
        _stage(route, "HSM", "exit", pid, t)
        out.append(pid)
        t += length / SPEED_MM_S["HSM"] + 120.0
    return out


def _groups(ids: list[str], widths: list[float], size: int) -> list[list[str]]:
    """Consecutive pieces of one width, at most ``size`` per group."""
    groups: list[list[str]] = []
    group_width = 0.0
    for pid, w in zip(ids, widths, strict=True):
        if groups and len(groups[-1]) < size and abs(group_width - w) < 0.01:
            groups[-1].append(pid)
        else:
            groups.append([pid])
            group_width = w
    return groups


def _scrap_segments(length_mm: float, seams: list[float], scrap_mm: float,
                    keep: list[bool]) -> list[tuple[float, float]]:
    """Segments between the scrap windows cut around the seams not kept."""
    segs, start = [], 0.0
    for s, k in zip(seams, keep, strict=True):
        if k:
            continue
        segs.append((start, s - scrap_mm / 2))
        start = s + scrap_mm / 2
    segs.append((start, length_mm))
    return [(a, b) for a, b in segs if b - a > 1.0]


def _holes(route: Route, piece: str, spacing_mm: float, line: str, t: float,
           rng: np.random.Generator) -> None:
    led = route.ledger
    st = led.pieces[piece]
    x, k = spacing_mm * rng.uniform(0.3, 0.7), 1
    while x < st.length_mm - 1000.0:
        led.mark(piece, f"{piece}/hole{k}", "hole", x, st.width_mm / 2 - 40.0, line=line,
                 time_s=t + x / SPEED_MM_S[line])
        x += spacing_mm
        k += 1


def _pickling(route: Route, p: PlantParams, hot: list[str],
              rng: np.random.Generator) -> list[str]:
    led, out = route.ledger, []
    t = LINE_START_S["PL"]
    widths = [led.pieces[h].width_mm for h in hot]
    for gi, group in enumerate(_groups(hot, widths, p.weld_group)):
        cropped = []
        for h in group:
            o = led.orient(h, f"{h}.PLo", p.orientations["PL"], line="PL", time_s=t)
            head, tail = rng.uniform(*p.pl_crop_mm, 2)
            c = led.crop(o.piece_id, f"{h}.PLc", head, tail, line="PL", time_s=t + 30.0)
            cropped.append(c.piece_id)
            t += c.length_mm / SPEED_MM_S["PL"]
        strip = f"PLS{gi + 1:03d}"
        if len(cropped) > 1:
            led.weld(cropped, strip, line="PL", time_s=t)
        else:
            strip = cropped[0]
        os_mm, ds_mm = rng.uniform(*p.pl_trim_mm, 2)
        trimmed = led.trim(strip, f"{strip}.t", os_mm, ds_mm, line="PL", time_s=t).piece_id
        t0 = t - led.pieces[trimmed].length_mm / SPEED_MM_S["PL"]
        _holes(route, trimmed, p.pl_hole_spacing_mm, "PL", t0, rng)
        st = led.pieces[trimmed]
        seams = sorted(x for m, x in st.marks.items() if ":seam" in m)
        keep = [bool(rng.random() < p.pl_join_share) for _ in seams]
        outputs = []
        for a, b in _scrap_segments(st.length_mm, seams, p.pl_weld_scrap_mm, keep):
            pid = f"P{len(route.stage.get(('PL', 'exit'), [])) + len(outputs) + 1:05d}"
            outputs.append((pid, a, b))
        led.cut(trimmed, outputs, line="PL", time_s=t + 10.0)
        for pid, a, _ in outputs:
            _stage(route, "PL", "exit", pid, t0 + a / SPEED_MM_S["PL"])
            out.append(pid)
        t += 600.0
    return out


def _cold_mill(route: Route, p: PlantParams, cat: Catalogue, pickled: list[str],
               rng: np.random.Generator) -> list[str]:
    led, out = route.ledger, []
    t = LINE_START_S["TCM"]
    for pid in pickled:
        o = led.orient(pid, f"{pid}.TCo", p.orientations["TCM"], line="TCM", time_s=t)
        h_out = round(float(rng.uniform(*p.cold_thickness_mm)), 3)
        width_factor = TCM_WIDTH_FACTOR
        k = o.thickness_mm / (h_out * width_factor)
        length = o.length_mm
        # Off-gauge head and tail roll out less; the body varies by about a per cent.
        a = length * rng.uniform(0.02, 0.05)
        b = length * rng.uniform(0.02, 0.05)
        knots_in = [0.0, a, length / 4, length / 2, 3 * length / 4, length - b, length]
        seg_k = [k * rng.uniform(0.88, 0.95)]
        seg_k += list(k * (1 + rng.normal(0.0, 0.01, 4)))
        seg_k += [k * rng.uniform(0.88, 0.95)]
        knots_in_r = [round(v, 3) for v in knots_in]
        knots_out = np.concatenate([[0.0], np.cumsum(np.diff(knots_in_r) * np.array(seg_k))])
        cid = "C" + pid[1:]
        c = led.elongate(o.piece_id, cid, list(zip(knots_in_r, knots_out, strict=True)),
                         width_factor=width_factor, thickness_mm=h_out, line="TCM", time_s=t)
        if rng.random() < p.tcm_rollmark_share:
            marks = roll_marks(rng, route.book, cat, piece=cid, line="TCM",
                               cls="pitted_surface", length_mm=c.length_mm,
                               width_mm=c.width_mm, roll_diameter_mm=p.tcm_roll_diameter_mm,
                               period_factor=1.0)
            c.defects = Defects.concat([c.defects, marks])
        _stage(route, "TCM", "exit", cid, t)
        out.append(cid)
        t += c.length_mm / SPEED_MM_S["TCM"] + 300.0
    return out


def _annealing(route: Route, p: PlantParams, cold: list[str],
               rng: np.random.Generator) -> list[str]:
    led, out = route.ledger, []
    t = LINE_START_S["CAL"]
    widths = [led.pieces[c].width_mm for c in cold]
    for gi, group in enumerate(_groups(cold, widths, p.weld_group)):
        cropped = []
        for cid in group:
            o = led.orient(cid, f"{cid}.CLo", p.orientations["CAL"], line="CAL", time_s=t)
            head, tail = rng.uniform(*p.cal_crop_mm, 2)
            c = led.crop(o.piece_id, f"{cid}.CLc", head, tail, line="CAL", time_s=t + 20.0)
            cropped.append(c.piece_id)
            t += c.length_mm / SPEED_MM_S["CAL"]
        strip = f"CLS{gi + 1:03d}"
        if len(cropped) > 1:
            led.weld(cropped, strip, line="CAL", time_s=t)
        else:
            strip = cropped[0]
        # The skin pass: a uniform elongation, written as two knots so that the new length
        # is exact to the micrometre in every reader.
        sl = led.pieces[strip].length_mm
        passed = led.elongate(strip, f"{strip}.k", [(0.0, 0.0), (sl, sl * p.skin_pass_elongation)],
                              line="CAL", time_s=t).piece_id
        st = led.pieces[passed]
        t0 = t - st.length_mm / SPEED_MM_S["CAL"]
        _holes(route, passed, p.cal_hole_spacing_mm, "CAL", t0, rng)
        seams = sorted(x for m, x in st.marks.items() if m.startswith(f"{strip}:seam"))
        outputs = []
        for a, b in _scrap_segments(st.length_mm, seams, p.cal_weld_scrap_mm,
                                    [False] * len(seams)):
            parts = max(1, math.ceil((b - a) / p.cal_max_coil_mm))
            edges = np.linspace(a, b, parts + 1)
            for j in range(parts):
                aid = f"A{len(route.stage.get(('CAL', 'exit'), [])) + len(outputs) + 1:05d}"
                outputs.append((aid, float(edges[j]), float(edges[j + 1])))
        led.cut(passed, outputs, line="CAL", time_s=t + 10.0)
        for aid, a, _ in outputs:
            _stage(route, "CAL", "exit", aid, t0 + a / SPEED_MM_S["CAL"])
            out.append(aid)
        t += 900.0
    return out


def _slitting(route: Route, p: PlantParams, annealed: list[str],
              rng: np.random.Generator) -> None:
    led = route.ledger
    t = LINE_START_S["SL"]
    for aid in annealed:
        o = led.orient(aid, f"{aid}.SLo", p.orientations["SL"], line="SL", time_s=t)
        _stage(route, "SL", "entry", o.piece_id, t)
        os_mm, ds_mm = rng.uniform(*p.sl_edge_trim_mm, 2)
        n = int(rng.integers(p.sl_bands[0], p.sl_bands[1] + 1))
        edges = np.linspace(-o.width_mm / 2 + ds_mm, o.width_mm / 2 - os_mm, n + 1)
        bands = [(f"S{aid[1:]}-{j + 1}", float(edges[j]), float(edges[j + 1]))
                 for j in range(n)]
        led.slit(o.piece_id, bands, line="SL", time_s=t + o.length_mm / SPEED_MM_S["SL"])
        for bid, _, _ in bands:
            _stage(route, "SL", "exit", bid, t)
        t += o.length_mm / SPEED_MM_S["SL"] + 240.0
