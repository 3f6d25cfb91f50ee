"""Roll marks: defect series that repeat along the strip at a roll's circumference (pure core).

A damaged work roll prints the same imprint once per revolution, so its marks lie at
``x0 + k * pi * D`` in the frame of the piece that left that roll, at one place across the
width, on one surface. Every later elongation stretches the period (unevenly where the strip
was rolled unevenly), so the search works on mapped positions with a tolerance that grows with
the lag, and :func:`trace_roll` maps a found series back through the genealogy to the line
whose roll made it.

The search, in three steps:

1. **Comb score** over candidate periods ``p``: the pairwise differences of positions (only
   pairs at the same place across the width when ``y`` is given) pile up at ``p, 2p, 3p, ...``
   for a periodic series. For each harmonic ``k`` the count in ``kp +- h_k`` is compared with
   the background density of differences around it (a window of ``+-p/2``), and the excesses
   are summed into a z-like score. Harmonics keep the score of the true period above that of
   ``p/2`` (half the lags are empty) and ``2p`` (fewer pairs), and make missed marks harmless.
2. **Members by chain growing** from the best seed pair at the winning period: step one
   period forward and back, take the nearest position within tolerance (a pseudo-defect beside
   a mark loses to the mark), allow a few misses, and follow a slowly drifting local period.
3. **Significance** against shuffled positions: the same comb on ``n_null`` sets of uniformly
   redrawn ``x`` (``y`` kept), so the p-value accounts for having searched every period.

>>> rng = np.random.default_rng(1)
>>> x = np.concatenate([2000.0 + 1508.0 * np.arange(12), rng.uniform(0, 30000, 20)])
>>> [s] = find_periodic_series(x, min_period_mm=500, max_period_mm=5000, n_null=19, alpha=0.05)
>>> round(s.period_mm), len(s.members) >= 12, s.p_value <= 0.05
(1508, True, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from coilmap.errors import InputError

if TYPE_CHECKING:
    from tracking.genealogy import Genealogy

# Harmonics of the period summed in the comb score.
N_HARMONICS = 4
# Seed pairs tried when growing chains (the ones closest to the winning period).
MAX_SEEDS = 48


@dataclass(frozen=True)
class PeriodicSeries:
    """One series of marks ``x ~ phase_mm + k * period_mm`` (``k`` = ``repeat_index``).

    ``members`` index the input arrays, sorted along the length; ``n_repeats`` is the number of
    revolutions the series spans (members + misses); ``residual_mm`` the RMS distance of the
    members from the straight line; ``score`` the comb score; ``p_value`` its tail probability
    under shuffled positions; ``y_mm`` the median place across the width (``None`` without y).
    """

    period_mm: float
    phase_mm: float
    members: np.ndarray
    repeat_index: np.ndarray
    residual_mm: float
    score: float
    p_value: float
    y_mm: float | None
    # Further sightings of the members (another station saw the same marks), indices like
    # ``members``.
    also_seen: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def n_repeats(self) -> int:
        return int(self.repeat_index.max() - self.repeat_index.min() + 1)

    @property
    def n_missing(self) -> int:
        return self.n_repeats - len(self.members)


@dataclass(frozen=True)
class RollCandidate:
    """Where a series may come from: the piece that left a roll, the period in its frame and
    the roll diameter that period means (``period / pi``).

    ``elongation`` is the stretch from that piece to the analysed one along the series;
    ``residual_mm`` the RMS scatter of the members about a straight line in that frame (the
    frame a roll printed in shows the most regular series when later rolling was uneven);
    ``plausible`` whether the diameter lies in the line's configured range (``None`` when the
    line has none).
    """

    piece_id: str
    line: str | None
    operation: str
    period_mm: float
    roll_diameter_mm: float
    elongation: float
    residual_mm: float
    plausible: bool | None

    @property
    def relative_residual(self) -> float:
        return self.residual_mm / self.period_mm


# --- the comb ------------------------------------------------------------------------------


def candidate_periods(
    min_period_mm: float, max_period_mm: float, tol_mm: float, rel_tol: float
) -> np.ndarray:
    """The period grid: steps small enough that the ``N_HARMONICS``-th lag stays inside its
    window (``step = (tol + rel_tol * p) / N_HARMONICS``)."""
    out = [float(min_period_mm)]
    while out[-1] < max_period_mm:
        out.append(out[-1] + (tol_mm + rel_tol * out[-1]) / N_HARMONICS)
    return np.asarray(out)


def _pair_differences(x: np.ndarray, y: np.ndarray | None, max_lag_mm: float, y_tol_mm: float) -> np.ndarray:
    """Sorted differences ``x_j - x_i`` (``x`` sorted, ``i < j``) up to ``max_lag_mm``, only
    between positions at the same place across the width when ``y`` is given."""
    parts = []
    for s in range(1, len(x)):
        d = x[s:] - x[:-s]
        if d.size == 0 or d.min() > max_lag_mm:
            break
        ok = d <= max_lag_mm
        if y is not None:
            ok &= np.abs(y[s:] - y[:-s]) <= y_tol_mm
        parts.append(d[ok])
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0)


def comb_scores(diffs_mm: np.ndarray, periods_mm: np.ndarray, tol_mm: float, rel_tol: float) -> np.ndarray:
    """Comb score of each candidate period from sorted pairwise differences."""
    k = np.arange(1, N_HARMONICS + 1)[None, :]
    p = periods_mm[:, None]
    centre = k * p
    half = tol_mm + rel_tol * centre
    hit = np.searchsorted(diffs_mm, centre + half, "right") - np.searchsorted(diffs_mm, centre - half, "left")
    wide = np.searchsorted(diffs_mm, centre + p / 2, "right") - np.searchsorted(
        diffs_mm, centre - p / 2, "left"
    )
    # Background expected inside the narrow window, from the rest of the wide one.
    background = (wide - hit) * (2 * half) / np.maximum(p - 2 * half, 1e-9)
    excess = (hit - background).sum(axis=1)
    return excess / np.sqrt(background.sum(axis=1) + 1.0)


# --- members ---------------------------------------------------------------------------------


def _grow(
    x: np.ndarray,
    y: np.ndarray | None,
    i: int,
    j: int,
    tol_mm: float,
    rel_tol: float,
    y_tol_mm: float,
    max_missing: int,
) -> tuple[list[int], list[int]]:
    """The chain through seed pair ``(i, j)``: member indices (into sorted ``x``) and their
    repeat numbers."""
    members = {0: i, 1: j}
    y_ref = None if y is None else float((y[i] + y[j]) / 2)
    for direction in (1, -1):
        last_k = 1 if direction == 1 else 0
        steps = [x[j] - x[i]]
        miss = 0
        while True:
            q = float(np.median(steps[-3:]))
            n = miss + 1
            target = x[members[last_k]] + direction * q * n
            if target < x[0] - q or target > x[-1] + q:
                break
            half = tol_mm + rel_tol * q * n
            lo = np.searchsorted(x, target - half, side="left")
            hi = np.searchsorted(x, target + half, side="right")
            cand = np.arange(lo, hi)
            if y is not None and cand.size:
                cand = cand[np.abs(y[cand] - y_ref) <= y_tol_mm]
            if cand.size:
                best = int(cand[np.argmin(np.abs(x[cand] - target))])
                new_k = last_k + direction * n
                steps.append(abs(x[best] - x[members[last_k]]) / n)
                members[new_k] = best
                last_k = new_k
                miss = 0
            else:
                miss += 1
                if miss > max_missing:
                    break
    ks = sorted(members)
    return [members[k] for k in ks], [k - ks[0] for k in ks]


def _line_fit(k: np.ndarray, x: np.ndarray) -> tuple[float, float, float]:
    """Least-squares ``x = a + b k``: ``(b, a, rms residual)``."""
    b, a = np.polyfit(k.astype(np.float64), x, 1)
    res = x - (a + b * k)
    return float(b), float(a), float(np.sqrt(np.mean(res**2)))


def _best_chain(
    x: np.ndarray,
    y: np.ndarray | None,
    period_mm: float,
    tol_mm: float,
    rel_tol: float,
    y_tol_mm: float,
    max_missing: int,
) -> tuple[np.ndarray, np.ndarray]:
    half = tol_mm + rel_tol * period_mm
    seeds: list[tuple[float, int, int]] = []
    for i in range(len(x)):
        lo = np.searchsorted(x, x[i] + period_mm - half, "left")
        hi = np.searchsorted(x, x[i] + period_mm + half, "right")
        for j in range(lo, hi):
            if j > i and (y is None or abs(y[j] - y[i]) <= y_tol_mm):
                seeds.append((abs(x[j] - x[i] - period_mm), i, j))
    seeds.sort()
    best: tuple[int, float, list[int], list[int]] | None = None
    for _, i, j in seeds[:MAX_SEEDS]:
        idx, ks = _grow(x, y, i, j, tol_mm, rel_tol, y_tol_mm, max_missing)
        rms = _line_fit(np.asarray(ks), x[idx])[2] if len(idx) > 2 else 0.0
        key = (len(idx), -rms)
        if best is None or key > (best[0], best[1]):
            best = (len(idx), -rms, idx, ks)
    if best is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.asarray(best[2], dtype=np.int64), np.asarray(best[3], dtype=np.int64)


# --- the search ------------------------------------------------------------------------------


def find_periodic_series(
    x_mm: np.ndarray | Sequence[float],
    y_mm: np.ndarray | Sequence[float] | None = None,
    *,
    min_period_mm: float = 300.0,
    max_period_mm: float = 10_000.0,
    tol_mm: float = 20.0,
    rel_tol: float = 0.02,
    y_tol_mm: float = 30.0,
    min_members: int = 4,
    max_missing: int = 2,
    max_series: int = 3,
    n_null: int = 99,
    alpha: float = 0.01,
    seed: int = 0,
) -> list[PeriodicSeries]:
    """Periodic series among positions along one piece (one class, one surface), strongest
    first, each significant at ``alpha`` against ``n_null`` shuffled-position sets.

    ``tol_mm`` is the position tolerance of a pair of marks (encoder and mapping error),
    ``rel_tol`` the relative drift of the period per revolution (uneven later elongation);
    ``y_tol_mm`` how far across the width marks of one roll may scatter.
    """
    x = np.asarray(x_mm, dtype=np.float64)
    y = None if y_mm is None else np.asarray(y_mm, dtype=np.float64)
    if x.ndim != 1 or (y is not None and y.shape != x.shape):
        raise InputError("x_mm must be 1-D and y_mm, when given, of the same length")
    if not np.all(np.isfinite(x)) or (y is not None and not np.all(np.isfinite(y))):
        raise InputError("positions must be finite numbers")
    if not 0 < min_period_mm < max_period_mm:
        raise InputError("need 0 < min_period_mm < max_period_mm", field="min_period_mm")
    if min_period_mm <= 4 * (tol_mm + rel_tol * N_HARMONICS * min_period_mm):
        raise InputError(
            f"min_period_mm {min_period_mm:g} is too short for tol_mm {tol_mm:g} and rel_tol {rel_tol:g}",
            field="min_period_mm",
        )
    if len(x) < min_members:
        return []
    order = np.argsort(x, kind="stable")
    xs = x[order]
    ys = None if y is None else y[order]
    periods = candidate_periods(min_period_mm, max_period_mm, tol_mm, rel_tol)
    max_lag = N_HARMONICS * max_period_mm * (1 + rel_tol) + tol_mm + max_period_mm / 2

    def best_score(xv: np.ndarray, yv: np.ndarray | None) -> tuple[float, float]:
        o = np.argsort(xv, kind="stable")
        scores = comb_scores(
            _pair_differences(xv[o], None if yv is None else yv[o], max_lag, y_tol_mm),
            periods,
            tol_mm,
            rel_tol,
        )
        i = int(np.argmax(scores))
        return float(scores[i]), float(periods[i])

    rng = np.random.default_rng(seed)
    null_max = np.array([best_score(rng.uniform(xs[0], xs[-1], len(xs)), ys)[0] for _ in range(n_null)])

    found: list[PeriodicSeries] = []
    alive = np.ones(len(xs), dtype=bool)
    for _ in range(max_series):
        idx_alive = np.flatnonzero(alive)
        if idx_alive.size < min_members:
            break
        xa = xs[idx_alive]
        ya = None if ys is None else ys[idx_alive]
        score, period = best_score(xa, ya)
        p_value = (1.0 + float(np.sum(null_max >= score))) / (n_null + 1.0)
        if p_value > alpha:
            break
        local, ks = _best_chain(xa, ya, period, tol_mm, rel_tol, y_tol_mm, max_missing)
        if local.size < min_members:
            break
        b, a, rms = _line_fit(ks, xa[local])
        sorted_idx = idx_alive[local]
        found.append(
            PeriodicSeries(
                period_mm=b,
                phase_mm=a,
                members=order[sorted_idx],
                repeat_index=ks,
                residual_mm=rms,
                score=score,
                p_value=p_value,
                y_mm=None if ys is None else float(np.median(ys[sorted_idx])),
            )
        )
        alive[sorted_idx] = False
    return found


# --- back through the genealogy -----------------------------------------------------------


def roll_frames(genealogy: Genealogy, piece_id: str) -> list[str]:
    """The piece and its ancestors that left a roll: made by ``create`` (the first mill) or by
    ``elongate`` (a rolling line), nearest first."""
    made_by = {out: op for op in genealogy.operations for out in op.outputs}
    out = []
    for pid in [piece_id, *genealogy.ancestors(piece_id)]:
        op = made_by.get(pid)
        if op is None or op.kind in ("create", "elongate"):
            out.append(pid)
    return out


def find_roll_marks(
    x_mm: np.ndarray,
    y_mm: np.ndarray | None,
    genealogy: Genealogy,
    piece_id: str,
    **search: float,
) -> list[tuple[str, PeriodicSeries]]:
    """Periodic series among positions on ``piece_id``, searched in the piece's own frame and
    in the frame of every ancestor that left a roll (positions mapped back; those that do not
    come from that ancestor are left out). Uneven rolling after a mark was printed bends the
    series on later pieces; in the frame of the roll that printed it, it is straight again.
    The same series found in several frames is reported once, in the frame where it is most
    significant and most regular. Members index ``x_mm``; positions in the series are in the
    returned frame."""
    x = np.asarray(x_mm, dtype=np.float64)
    y = np.zeros_like(x) if y_mm is None else np.asarray(y_mm, dtype=np.float64)
    found: list[tuple[str, PeriodicSeries]] = []
    for frame in roll_frames(genealogy, piece_id):
        mapped = genealogy.map_points(piece_id, frame, x, y, np.ones(len(x), dtype=bool))
        idx = np.flatnonzero(mapped.kept)
        if idx.size == 0:
            continue
        ys = None if y_mm is None else mapped.y_mm[idx]
        for s in find_periodic_series(mapped.x_mm[idx], ys, **search):  # type: ignore[arg-type]
            found.append((frame, _reindex(s, idx)))
    found.sort(key=lambda f: (f[1].p_value, -len(f[1].members), f[1].residual_mm / f[1].period_mm))
    tol = float(search.get("tol_mm", 20.0))
    y_tol = float(search.get("y_tol_mm", 30.0))
    kept: list[tuple[str, PeriodicSeries]] = []
    for frame, s in found:
        mine = set(s.members.tolist())
        if any(len(mine & set(o.members.tolist())) >= 0.5 * len(mine) for _, o in kept):
            continue  # the same series, found again in another frame
        twin = next((i for i, (_, o) in enumerate(kept) if _same_marks(x, y, s, o, tol, y_tol)), None)
        if twin is None:
            kept.append((frame, s))
            continue
        # The same marks seen by another station: one series, more sightings.
        f0, o = kept[twin]
        extra = np.setdiff1d(np.concatenate([o.also_seen, s.members, s.also_seen]), o.members)
        kept[twin] = (f0, replace(o, also_seen=extra))
    return kept


def _same_marks(
    x: np.ndarray, y: np.ndarray, a: PeriodicSeries, b: PeriodicSeries, tol: float, y_tol: float
) -> bool:
    """Whether most members of ``a`` lie on members of ``b`` (positions on the analysed piece)."""
    xb = np.sort(x[b.members])
    xa = x[a.members]
    j = np.clip(np.searchsorted(xb, xa), 1, len(xb) - 1)
    near = np.minimum(np.abs(xa - xb[j - 1]), np.abs(xa - xb[j]))
    same_y = abs(float(np.median(y[a.members])) - float(np.median(y[b.members]))) <= y_tol
    return bool(same_y and np.mean(near <= 2 * tol) >= 0.5)


def _reindex(s: PeriodicSeries, idx: np.ndarray) -> PeriodicSeries:
    return replace(s, members=idx[s.members], also_seen=idx[s.also_seen])


def trace_roll(
    member_x_mm: np.ndarray,
    repeat_index: np.ndarray,
    genealogy: Genealogy,
    piece_id: str,
    *,
    member_y_mm: np.ndarray | None = None,
    roll_diameters_mm: Mapping[str, tuple[float, float]] | None = None,
) -> list[RollCandidate]:
    """Candidate rolls of a series found on ``piece_id``: for the piece itself and every
    ancestor that left a roll (made by ``create`` at the first line, or by ``elongate``), the
    members are mapped back into that piece's frame and refitted; the period there over pi is
    the roll diameter. Sorted by how regular the series is in each frame, plausible diameters
    first when ``roll_diameters_mm`` (line -> (min, max)) is given."""
    xd = np.asarray(member_x_mm, dtype=np.float64)
    ks = np.asarray(repeat_index, dtype=np.float64)
    yd = np.zeros_like(xd) if member_y_mm is None else np.asarray(member_y_mm, dtype=np.float64)
    made_by = {out: op for op in genealogy.operations for out in op.outputs}
    p_dst = abs(_line_fit(ks, xd)[0])
    out: list[RollCandidate] = []
    for pid in [piece_id, *genealogy.ancestors(piece_id)]:
        op = made_by.get(pid)
        kind = "create" if op is None else op.kind
        if kind not in ("create", "elongate"):
            continue
        mapped = genealogy.map_points(piece_id, pid, xd, yd, np.ones(len(xd), dtype=bool))
        keep = mapped.kept
        if keep.sum() < 3:
            continue
        b, _, rms = _line_fit(ks[keep], mapped.x_mm[keep])
        period = abs(b)
        line = genealogy.piece(pid).line
        rng_d = (roll_diameters_mm or {}).get(line) if line else None
        diameter = period / np.pi
        out.append(
            RollCandidate(
                piece_id=pid,
                line=line,
                operation=kind,
                period_mm=period,
                roll_diameter_mm=float(diameter),
                elongation=p_dst / period,
                residual_mm=rms,
                plausible=None if rng_d is None else bool(rng_d[0] <= diameter <= rng_d[1]),
            )
        )
    # Plausible first, then unknown, then implausible; within each, the most regular frame.
    rank = {True: 0, None: 1, False: 2}
    return sorted(out, key=lambda c: (rank[c.plausible], round(c.relative_residual, 4)))
