"""A map from one piece frame to another: the composition of any chain of operations.

Every operation of DOMAIN.md is separable: the new ``x`` depends on ``x`` alone through a
monotone piecewise-linear function, the new ``y`` on ``y`` alone through an affine one, and the
surface side is kept or swapped. Compositions stay separable, so a whole genealogy path is one
:class:`FrameMap`: two functions, a side flag, and the *gates* (what each operation on the path
keeps), all pulled back into the path's source frame. Mapping points is then a handful of array
operations whatever the path's length: no per-defect, per-event walk.

>>> from tracking.linear import PiecewiseLinear as PL
>>> from tracking.region import Rect
>>> crop = FrameMap(PL.affine(1.0, -2000.0), PL.identity(), False,
...                 (Gate("crop", "H1", (Rect(Interval(2000.0, 498500.0), Interval()),)),))
>>> turn = FrameMap(PL.affine(-1.0, 496500.0), PL.affine(-1.0), False)
>>> m = crop.then(turn)
>>> r = m.map_points(np.array([2500.0, 1000.0]), np.array([100.0, 0.0]), np.array([True, True]))
>>> r.x_mm.tolist(), r.y_mm.tolist(), r.status.tolist()
([496000.0, 497500.0], [-100.0, 0.0], ['kept', 'removed:crop'])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely

from tracking.linear import PiecewiseLinear
from tracking.region import INF, Gate, Interval

KEPT = -1
# Stand-in for infinity when a kept region becomes a shapely polygon (mm; 1e9 km).
_FAR_MM = 1e12


@dataclass(frozen=True)
class MappedPoints:
    """Points in the target frame. ``removed_gate[i]`` is the index into ``gates`` of the first
    operation that removed point ``i`` (``-1`` when kept); mapped coordinates of removed points
    are where they would be had the material not been removed (off the piece)."""

    x_mm: np.ndarray
    y_mm: np.ndarray
    is_top: np.ndarray
    removed_gate: np.ndarray
    gates: tuple[Gate, ...] = field(repr=False)

    @property
    def kept(self) -> np.ndarray:
        return self.removed_gate == KEPT

    @property
    def removed_by(self) -> np.ndarray:
        """Operation kind that removed each point (``''`` when kept), as an object array."""
        return self._label(lambda g: g.op)

    @property
    def removed_at(self) -> np.ndarray:
        """The piece the removing operation acted on (``''`` when kept)."""
        return self._label(lambda g: g.at_piece)

    @property
    def status(self) -> np.ndarray:
        """``'kept'`` or ``'removed:<op>'`` per point."""
        labels = np.array(["kept"] + [f"removed:{g.op}" for g in self.gates], dtype=object)
        return labels[self.removed_gate + 1]

    def _label(self, pick) -> np.ndarray:  # type: ignore[no-untyped-def]
        labels = np.array([""] + [pick(g) for g in self.gates], dtype=object)
        return labels[self.removed_gate + 1]


@dataclass(frozen=True)
class MappedBoxes(MappedPoints):
    """Axis-aligned boxes, clipped to what the path keeps: ``x_mm``/``y_mm`` are the centres,
    ``x0_mm <= x1_mm`` and ``y0_mm <= y1_mm`` the clipped extent (the unclipped one, mapped,
    for removed boxes)."""

    x0_mm: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    y0_mm: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    x1_mm: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    y1_mm: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]


@dataclass(frozen=True)
class FrameMap:
    """``(x, y, side) -> (fx(x), fy(y), side xor flips_side)``, defined where every gate keeps."""

    fx: PiecewiseLinear
    fy: PiecewiseLinear
    flips_side: bool
    gates: tuple[Gate, ...] = ()

    @classmethod
    def identity(cls) -> FrameMap:
        return cls(PiecewiseLinear.identity(), PiecewiseLinear.identity(), False)

    def then(self, outer: FrameMap) -> FrameMap:
        """First this map, then ``outer`` (whose source frame is this map's target frame)."""
        pulled = tuple(g.preimage(self.fx, self.fy) for g in outer.gates)
        return FrameMap(
            self.fx.then(outer.fx),
            self.fy.then(outer.fy),
            self.flips_side != outer.flips_side,
            self.gates + pulled,
        )

    def inverse(self) -> FrameMap:
        """The map back from the target frame; its gates keep exactly the images of what this
        map keeps (a spot of a welded strip maps back into this input only if it came from it)."""
        return FrameMap(
            self.fx.inverse(),
            self.fy.inverse(),
            self.flips_side,
            tuple(g.image(self.fx, self.fy) for g in self.gates),
        )

    # -- points ---------------------------------------------------------------------------
    def removed_gate(self, x_mm: np.ndarray, y_mm: np.ndarray) -> np.ndarray:
        """Index of the first gate each point fails (``-1`` if it passes all)."""
        removed = np.full(np.shape(x_mm), KEPT, dtype=np.int64)
        for i, gate in enumerate(self.gates):
            out = ~gate.contains(x_mm, y_mm) & (removed == KEPT)
            removed[out] = i
        return removed

    def map_points(self, x_mm: np.ndarray, y_mm: np.ndarray, is_top: np.ndarray) -> MappedPoints:
        x_mm = np.asarray(x_mm, dtype=np.float64)
        y_mm = np.asarray(y_mm, dtype=np.float64)
        is_top = np.asarray(is_top, dtype=bool)
        return MappedPoints(
            self.fx(x_mm),
            self.fy(y_mm),
            is_top != self.flips_side,
            self.removed_gate(x_mm, y_mm),
            self.gates,
        )

    # -- boxes ----------------------------------------------------------------------------
    def map_boxes(
        self,
        x0_mm: np.ndarray,
        y0_mm: np.ndarray,
        x1_mm: np.ndarray,
        y1_mm: np.ndarray,
        is_top: np.ndarray,
    ) -> MappedBoxes:
        """Clip each box to what every gate keeps, then map it. A box that a gate cuts through
        keeps its surviving part; one with nothing left is removed by the first gate that
        leaves nothing. Where a gate keeps several rectangles (a trim of a welded strip of
        varying width), the clipped box is the bounding box of its surviving parts."""
        x0 = np.minimum(x0_mm, x1_mm).astype(np.float64)
        x1 = np.maximum(x0_mm, x1_mm).astype(np.float64)
        y0 = np.minimum(y0_mm, y1_mm).astype(np.float64)
        y1 = np.maximum(y0_mm, y1_mm).astype(np.float64)
        is_top = np.asarray(is_top, dtype=bool)
        removed = np.full(x0.shape, KEPT, dtype=np.int64)
        cx0, cx1, cy0, cy1 = x0.copy(), x1.copy(), y0.copy(), y1.copy()
        for i, gate in enumerate(self.gates):
            nx0 = np.full_like(cx0, INF)
            nx1 = np.full_like(cx0, -INF)
            ny0 = np.full_like(cx0, INF)
            ny1 = np.full_like(cx0, -INF)
            any_part = np.zeros(cx0.shape, dtype=bool)
            for rect in gate.rects:
                ax0, ax1, okx = _clip(cx0, cx1, rect.x)
                ay0, ay1, oky = _clip(cy0, cy1, rect.y)
                ok = okx & oky
                any_part |= ok
                nx0 = np.where(ok, np.minimum(nx0, ax0), nx0)
                nx1 = np.where(ok, np.maximum(nx1, ax1), nx1)
                ny0 = np.where(ok, np.minimum(ny0, ay0), ny0)
                ny1 = np.where(ok, np.maximum(ny1, ay1), ny1)
            live = removed == KEPT
            newly = live & ~any_part
            removed[newly] = i
            upd = live & any_part
            cx0 = np.where(upd, nx0, cx0)
            cx1 = np.where(upd, nx1, cx1)
            cy0 = np.where(upd, ny0, cy0)
            cy1 = np.where(upd, ny1, cy1)
        gone = removed != KEPT
        # Removed boxes are reported unclipped (where they would have been).
        cx0, cx1 = np.where(gone, x0, cx0), np.where(gone, x1, cx1)
        cy0, cy1 = np.where(gone, y0, cy0), np.where(gone, y1, cy1)
        mx0, mx1 = _sorted_pair(self.fx(cx0), self.fx(cx1))
        my0, my1 = _sorted_pair(self.fy(cy0), self.fy(cy1))
        return MappedBoxes(
            (mx0 + mx1) / 2.0,
            (my0 + my1) / 2.0,
            is_top != self.flips_side,
            removed,
            self.gates,
            mx0,
            my0,
            mx1,
            my1,
        )

    # -- polygons -------------------------------------------------------------------------
    def kept_region(self) -> shapely.Geometry:
        """What the path keeps, in the source frame, as a shapely geometry."""
        region = shapely.box(-_FAR_MM, -_FAR_MM, _FAR_MM, _FAR_MM)
        for gate in self.gates:
            parts = [
                shapely.box(_finite(r.x.lo), _finite(r.y.lo), _finite(r.x.hi), _finite(r.y.hi))
                for r in gate.rects
                if not r.empty
            ]
            region = shapely.intersection(region, shapely.union_all(parts))
        return region

    def map_geometries(self, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Clip shapely geometries (source frame) to the kept region and map them exactly.

        Returns ``(mapped, removed_gate)``; a geometry with nothing kept maps unclipped. Edges
        are split where they cross a knot of the length map, so a polygon bends exactly where
        the material was stretched differently."""
        geoms = np.asarray(geoms, dtype=object)
        region = self.kept_region()
        clipped = shapely.intersection(geoms, region)
        empty = shapely.is_empty(clipped)
        removed = np.full(geoms.shape, KEPT, dtype=np.int64)
        if empty.any():
            # Attribute each fully removed geometry to the first gate that leaves nothing.
            remaining = geoms[empty]
            idx = np.flatnonzero(empty)
            rem = np.full(idx.shape, KEPT, dtype=np.int64)
            for i, gate in enumerate(self.gates):
                part = shapely.union_all(
                    [
                        shapely.box(_finite(r.x.lo), _finite(r.y.lo), _finite(r.x.hi), _finite(r.y.hi))
                        for r in gate.rects
                        if not r.empty
                    ]
                )
                remaining = shapely.intersection(remaining, part)
                now = shapely.is_empty(remaining) & (rem == KEPT)
                rem[now] = i
            removed[idx] = rem
        source = np.where(empty, geoms, clipped)
        mapped = np.array([self._map_one(g) for g in source], dtype=object)
        return mapped, removed

    def _map_one(self, geom: shapely.Geometry) -> shapely.Geometry:
        if geom is None or shapely.is_empty(geom):
            return geom
        minx, miny, maxx, maxy = shapely.bounds(geom)
        knots = self.fx.xs[(self.fx.xs > minx) & (self.fx.xs < maxx)]
        if knots.size and shapely.get_dimensions(geom) > 0:
            edges = np.concatenate(([minx - 1.0], knots, [maxx + 1.0]))
            strips = [
                shapely.box(a, miny - 1.0, b, maxy + 1.0) for a, b in zip(edges[:-1], edges[1:], strict=True)
            ]
            parts = [shapely.intersection(geom, s) for s in strips]
            parts = [self._transform(p) for p in parts if not shapely.is_empty(p)]
            return shapely.union_all(parts, grid_size=1e-6)
        return self._transform(geom)

    def _transform(self, geom: shapely.Geometry) -> shapely.Geometry:
        def fn(coords: np.ndarray) -> np.ndarray:
            return np.column_stack((self.fx(coords[:, 0]), self.fy(coords[:, 1])))

        return shapely.transform(geom, fn)


def _clip(lo: np.ndarray, hi: np.ndarray, iv: Interval) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.maximum(lo, iv.lo)
    b = np.minimum(hi, iv.hi)
    # Non-empty: a proper overlap, or a degenerate one (a point box) that the interval holds.
    ok = (a < b) | ((a == b) & iv.contains(a))
    return a, b, ok


def _sorted_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.minimum(a, b), np.maximum(a, b)


def _finite(v: float) -> float:
    return float(np.clip(v, -_FAR_MM, _FAR_MM))
