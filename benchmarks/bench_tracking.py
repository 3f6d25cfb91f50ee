"""Mapping 1,000,000 point defects through crop -> orient -> trim -> weld -> elongate(knots)
-> cut in one call, beside a per-defect Python/shapely loop over the same operations.

    coilmap bench tracking [--n 1000000] [--loop-n 20000] [--repeats 5]

The loop walks each defect event by event (a shapely point, one operation after the other):
what a system without composed maps does. It runs on a sample (it would take minutes on a
million) and both are reported as defects per second measured in the same run; the loop's
results must agree with the composed map on that sample.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import shapely
from shapely.affinity import affine_transform

from tracking.events import parse_events
from tracking.genealogy import Genealogy

L1, L2, W = 500_000.0, 420_000.0, 1300.0
HEAD, TAIL, OS, DS = 2000.0, 1500.0, 12.0, 13.0
LT = L1 - HEAD - TAIL  # trimmed coil's length
LS = LT + L2  # welded strip
KNOTS = [[0.0, 0.0], [300_000.0, 1_250_000.0], [600_000.0, 2_480_000.0], [LS, 3_720_000.0]]
CUTS = [(0.0, 1_200_000.0), (1_200_000.0, 2_500_000.0), (2_500_000.0, 3_720_000.0)]


def events() -> list[str]:
    recs = [
        {"op": "create", "piece": "H1", "length_mm": L1, "width_mm": W},
        {"op": "create", "piece": "H2", "length_mm": L2, "width_mm": W - OS - DS},
        {"op": "crop", "input": "H1", "output": "H1a", "head_mm": HEAD, "tail_mm": TAIL},
        {"op": "orient", "input": "H1a", "output": "H1b", "how": "flip_cross"},
        {"op": "trim", "input": "H1b", "output": "H1c", "os_mm": OS, "ds_mm": DS},
        {"op": "weld", "inputs": ["H1c", "H2"], "output": "S"},
        {"op": "elongate", "input": "S", "output": "E", "knots": KNOTS},
        {
            "op": "cut",
            "input": "E",
            "outputs": [{"piece": f"C{i + 1}", "from_mm": a, "to_mm": b} for i, (a, b) in enumerate(CUTS)],
        },
    ]
    return [json.dumps(r) for r in recs]


# -- the per-defect loop: one shapely point, one operation after the other ----------------
def _crop(p):  # type: ignore[no-untyped-def]
    if not HEAD <= p.x <= L1 - TAIL:
        return None
    return affine_transform(p, [1, 0, 0, 1, -HEAD, 0])


def _flip_cross(p):  # type: ignore[no-untyped-def]
    return affine_transform(p, [-1, 0, 0, 1, LT, 0])


def _trim(p):  # type: ignore[no-untyped-def]
    if not -W / 2 + DS <= p.y <= W / 2 - OS:
        return None
    return affine_transform(p, [1, 0, 0, 1, 0, -(DS - OS) / 2])


def _weld(p):  # type: ignore[no-untyped-def]
    return p  # the first input of the weld: offset 0


def _elongate(p):  # type: ignore[no-untyped-def]
    xs = [k[0] for k in KNOTS]
    for i in range(len(xs) - 1):
        if xs[i] <= p.x <= xs[i + 1] or i == len(xs) - 2:
            (x0, y0), (x1, y1) = KNOTS[i], KNOTS[i + 1]
            return shapely.Point(y0 + (p.x - x0) * (y1 - y0) / (x1 - x0), p.y)
    raise AssertionError


def _cut_c2(p):  # type: ignore[no-untyped-def]
    a, b = CUTS[1]
    if not a <= p.x < b:
        return None
    return affine_transform(p, [1, 0, 0, 1, -a, 0])


LOOP_STEPS = (_crop, _flip_cross, _trim, _weld, _elongate, _cut_c2)


def loop_map(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    out_x = np.full(x.shape, np.nan)
    out_y = np.full(x.shape, np.nan)
    kept = np.zeros(x.shape, dtype=bool)
    for i in range(x.size):
        p = shapely.Point(float(x[i]), float(y[i]))
        for step in LOOP_STEPS:
            p = step(p)
            if p is None:
                break
        if p is not None:
            out_x[i], out_y[i], kept[i] = p.x, p.y, True
    return out_x, out_y, kept


def run(n: int, loop_n: int, repeats: int, seed: int = 1) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, L1, n)
    y = rng.uniform(-W / 2, W / 2, n)
    top = rng.random(n) < 0.5
    t0 = time.perf_counter()
    g = Genealogy.from_operations(parse_events(events(), "bench"))
    first = g.map_points("H1", "C2", x, y, top)  # builds and caches the composed path map
    cold_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        res = g.map_points("H1", "C2", x, y, top)
        times.append(time.perf_counter() - t)
    vec_s = statistics.median(times)
    assert np.array_equal(res.x_mm, first.x_mm)

    t = time.perf_counter()
    lx, ly, lk = loop_map(x[:loop_n], y[:loop_n])
    loop_s = time.perf_counter() - t
    sample_kept = res.kept[:loop_n]
    agree = bool(np.array_equal(lk, sample_kept))
    max_diff = float(np.nanmax(np.abs(lx[lk] - res.x_mm[:loop_n][lk]))) if lk.any() else 0.0
    vec_rate = n / vec_s
    loop_rate = loop_n / loop_s
    return {
        "defects": n,
        "kept_in_C2": int(res.kept.sum()),
        "composed_map_s_median": round(vec_s, 4),
        "first_call_incl_building_genealogy_s": round(cold_s, 4),
        "composed_defects_per_s": round(vec_rate),
        "loop_sample": loop_n,
        "loop_s": round(loop_s, 3),
        "loop_defects_per_s": round(loop_rate),
        "speedup": round(vec_rate / loop_rate, 1),
        "loop_agrees_on_kept": agree,
        "loop_max_abs_diff_mm": max_diff,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="coilmap bench tracking", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--loop-n", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.n, args.loop_n, args.repeats), indent=2))


if __name__ == "__main__":
    main()
