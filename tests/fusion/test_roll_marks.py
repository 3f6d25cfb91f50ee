"""Roll-mark series: synthetic series with noise, misses and pseudo-defects, and a series
pushed through a real genealogy with uneven elongation, traced back to its roll."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coilmap.errors import InputError
from fusion.roll_marks import (
    candidate_periods,
    comb_scores,
    find_periodic_series,
    find_roll_marks,
    roll_frames,
    trace_roll,
)
from tracking.events import parse_events
from tracking.genealogy import Genealogy


def _series(rng: np.random.Generator, *, start: float, period: float, n: int, noise: float, miss: float):
    x = start + period * np.arange(n) + rng.normal(0.0, noise, n)
    keep = rng.random(n) >= miss
    return x[keep], np.flatnonzero(keep)


def test_noisy_series_with_misses_and_pseudo_defects_is_found_exactly() -> None:
    rng = np.random.default_rng(7)
    marks, k_true = _series(rng, start=3000.0, period=1508.0, n=30, noise=4.0, miss=0.2)
    # Pseudo-defects right beside some marks, and random defects of the same class.
    decoys = marks[::5] + rng.choice([-1, 1], len(marks[::5])) * rng.uniform(40, 80, len(marks[::5]))
    noise = rng.uniform(0, 60_000, 60)
    x = np.concatenate([marks, decoys, noise])
    found = find_periodic_series(x, min_period_mm=500, max_period_mm=8000, n_null=49, alpha=0.05)
    assert found, "the series was not found"
    s = found[0]
    assert s.period_mm == pytest.approx(1508.0, abs=2.0)
    members = set(s.members.tolist())
    true_members = set(range(len(marks)))
    # Every real mark is in, no decoy beside a mark is (the nearest one wins).
    assert len(members & true_members) >= len(marks) - 1
    assert not members & set(range(len(marks), len(marks) + len(decoys)))
    assert s.p_value <= 0.05
    assert s.n_missing == s.n_repeats - len(s.members)


def test_uniform_random_positions_raise_no_alarm() -> None:
    rng = np.random.default_rng(3)
    alarms = 0
    for _ in range(5):
        x = rng.uniform(0, 80_000, 80)
        alarms += bool(find_periodic_series(x, min_period_mm=500, max_period_mm=8000, n_null=39, alpha=0.05))
    assert alarms <= 1


def test_true_period_beats_its_half_and_double() -> None:
    x = 1000.0 + 2262.0 * np.arange(20)
    periods = np.array([1131.0, 2262.0, 4524.0])
    diffs = np.sort((x[None, :] - x[:, None])[np.triu_indices(len(x), 1)])
    s = comb_scores(diffs, periods, 20.0, 0.02)
    assert s[1] > s[0] and s[1] > s[2]


def test_two_rolls_at_different_places_across_the_width_are_two_series() -> None:
    rng = np.random.default_rng(11)
    a, _ = _series(rng, start=500.0, period=1508.0, n=25, noise=3.0, miss=0.1)
    b, _ = _series(rng, start=900.0, period=2262.0, n=18, noise=3.0, miss=0.1)
    x = np.concatenate([a, b, rng.uniform(0, 40_000, 30)])
    y = np.concatenate([np.full(len(a), 300.0), np.full(len(b), -420.0), rng.uniform(-600, 600, 30)])
    y += rng.normal(0, 5, len(y))
    found = find_periodic_series(x, y, min_period_mm=500, max_period_mm=5000, n_null=39, alpha=0.05)
    got = sorted((round(s.period_mm), round(s.y_mm or 0.0, -1)) for s in found[:2])
    assert [g[0] for g in got] == pytest.approx([1508, 2262], abs=3)
    assert [g[1] for g in got] == [300.0, -420.0]


def test_bad_input_is_named() -> None:
    with pytest.raises(InputError, match="finite"):
        find_periodic_series([1.0, np.nan, 3.0, 4.0])
    with pytest.raises(InputError, match="min_period_mm"):
        find_periodic_series([1.0, 2.0, 3.0, 4.0], min_period_mm=50, tol_mm=20)
    assert candidate_periods(500, 600, 20, 0.0)[1] == pytest.approx(505.0)


# A hot coil marked by a 720 mm HSM work roll, turned over on the pickling line, cold rolled
# unevenly (off-gauge ends stretch less, the body varies by 3 %), cropped and skin-passed.
EVENTS = [
    '{"op":"create","piece":"H","length_mm":120000,"width_mm":1250,"line":"HSM"}',
    '{"op":"orient","input":"H","output":"Ho","how":"flip_cross","line":"PL"}',
    '{"op":"elongate","input":"Ho","output":"C","line":"TCM","knots":[[0,0],[4000,10800],'
    "[40000,117000],[80000,238200],[116000,343500],[120000,354300]]}",
    '{"op":"crop","input":"C","output":"Cc","head_mm":3000,"tail_mm":2000,"line":"CAL"}',
    '{"op":"elongate","input":"Cc","output":"F","factor":1.012,"line":"SPM"}',
]


def test_series_through_uneven_rolling_points_to_the_hot_mill_roll() -> None:
    g = Genealogy.from_operations(parse_events(EVENTS, "roll.jsonl"))
    rng = np.random.default_rng(5)
    period_h = math.pi * 720.0
    k = np.arange(45)
    x_h = 6000.0 + period_h * k + rng.normal(0, 3.0, len(k))
    keep = rng.random(len(k)) > 0.15
    x_h, k = x_h[keep], k[keep]
    on_f = g.map_points("H", "F", x_h, np.full(len(x_h), 200.0), np.ones(len(x_h), dtype=bool))
    assert on_f.kept.all()
    noise = rng.uniform(0, g.piece("F").length_mm, 40)
    x_f = np.concatenate([on_f.x_mm, noise])
    found = find_periodic_series(
        x_f, min_period_mm=2000, max_period_mm=12_000, rel_tol=0.04, n_null=39, alpha=0.05
    )
    assert found
    s = found[0]
    # On the final coil the period is ~ 2262 * 3.0 * 1.012 and not constant.
    assert 6500 < s.period_mm < 7300
    assert len(set(s.members.tolist()) & set(range(len(x_h)))) >= len(x_h) - 2
    cands = trace_roll(
        x_f[s.members],
        s.repeat_index,
        g,
        "F",
        roll_diameters_mm={"HSM": (600.0, 850.0), "TCM": (400.0, 600.0)},
    )
    best = cands[0]
    assert (best.piece_id, best.line, best.operation) == ("H", "HSM", "create")
    assert best.roll_diameter_mm == pytest.approx(720.0, abs=1.0)
    assert best.plausible is True
    by_piece = {c.piece_id: c for c in cands}
    # In the cold coil's frame the diameter would be ~2,160 mm: not a cold-mill work roll,
    # and the series is less regular there (the uneven elongation bends it).
    assert by_piece["C"].plausible is False
    assert by_piece["C"].relative_residual > 5 * best.relative_residual
    assert by_piece["F"].elongation == pytest.approx(1.0)


def test_cold_mill_roll_mark_is_traced_to_the_cold_mill() -> None:
    g = Genealogy.from_operations(parse_events(EVENTS, "roll.jsonl"))
    period_c = math.pi * 480.0
    k = np.arange(3, 150, dtype=np.int64)
    x_c = 5000.0 + period_c * k
    on_f = g.map_points("C", "F", x_c, np.zeros(len(k)), np.ones(len(k), dtype=bool))
    ok = on_f.kept
    cands = trace_roll(
        on_f.x_mm[ok], k[ok], g, "F", roll_diameters_mm={"HSM": (600.0, 850.0), "TCM": (400.0, 600.0)}
    )
    assert (cands[0].piece_id, cands[0].line) == ("C", "TCM")
    assert cands[0].roll_diameter_mm == pytest.approx(480.0, abs=0.5)
    assert {c.piece_id for c in cands} == {"H", "C", "F"}


def test_search_in_the_frame_of_the_roll_straightens_the_series() -> None:
    g = Genealogy.from_operations(parse_events(EVENTS, "roll.jsonl"))
    rng = np.random.default_rng(2)
    k = np.arange(2, 44)
    x_h = 6000.0 + math.pi * 720.0 * k + rng.normal(0, 3.0, len(k))
    on_f = g.map_points("H", "F", x_h, np.full(len(k), -300.0), np.ones(len(k), dtype=bool))
    x_f = np.concatenate([on_f.x_mm, rng.uniform(0, g.piece("F").length_mm, 40)])
    y_f = np.concatenate([on_f.y_mm, rng.uniform(-600, 600, 40)])
    assert roll_frames(g, "F") == ["F", "C", "H"]
    found = find_roll_marks(x_f, y_f, g, "F", min_period_mm=1000, max_period_mm=12_000, n_null=19, alpha=0.05)
    frame, s = found[0]
    assert frame == "H"
    assert s.period_mm == pytest.approx(math.pi * 720.0, abs=1.0)
    assert set(s.members.tolist()) == set(range(len(k)))
    # Reported once, not once per frame.
    assert len([f for f in found if set(f[1].members.tolist()) & set(range(len(k)))]) == 1


def test_marks_seen_by_two_stations_are_one_series() -> None:
    g = Genealogy.from_operations(
        parse_events(
            ['{"op":"create","piece":"C","length_mm":60000,"width_mm":1200,"line":"TCM"}'], "c.jsonl"
        )
    )
    rng = np.random.default_rng(8)
    marks = 2000.0 + math.pi * 480.0 * np.arange(30)
    seen = marks[rng.random(30) < 0.7]
    second = seen + rng.normal(0, 5.0, len(seen))
    x = np.concatenate([marks, second, rng.uniform(0, 60_000, 20)])
    y = np.concatenate([np.full(len(marks) + len(second), 100.0), rng.uniform(-600, 600, 20)])
    found = find_roll_marks(x, y, g, "C", min_period_mm=500, max_period_mm=5000, n_null=19, alpha=0.05)
    assert len(found) == 1
    _, s = found[0]
    both = set(s.members.tolist()) | set(s.also_seen.tolist())
    assert set(range(len(marks) + len(second))) <= both
    assert s.period_mm == pytest.approx(math.pi * 480.0, abs=1.0)
