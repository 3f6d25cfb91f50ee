"""The genealogy DAG of pieces and the exact maps along its paths.

Operations consume pieces and make new ones; each (input, output) pair is an edge carrying the
:class:`~tracking.frame_map.FrameMap` of that operation. A map between any two related pieces is
the composition of the edge maps along the path (forward from an ancestor, or the inverse of it
backward from a descendant), computed once per pair and cached.

>>> from tracking.events import parse_events
>>> g = Genealogy.from_operations(parse_events([
...     '{"op":"create","piece":"A","length_mm":1000,"width_mm":100}',
...     '{"op":"create","piece":"B","length_mm":500,"width_mm":100}',
...     '{"op":"weld","inputs":["A","B"],"output":"S"}',
...     '{"op":"cut","input":"S","outputs":[{"piece":"C1","from_mm":0,"to_mm":700},'
...     '{"piece":"C2","from_mm":700,"to_mm":1500}]}'], "ex.jsonl"))
>>> m = g.map_points("B", "C2", np.array([100.0]), np.array([5.0]), np.array([True]))
>>> m.x_mm.tolist(), m.status.tolist()
([400.0], ['kept'])
>>> [(k.mark_id, k.x_mm) for k in g.marks("C2")]
[('C2:head', 0.0), ('S:seam1', 300.0), ('C2:tail', 800.0)]
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coilmap.errors import NotFoundError
from tracking import operations as opx
from tracking.events import Operation
from tracking.frame_map import KEPT, FrameMap, MappedBoxes, MappedPoints
from tracking.operations import OpParamError, Shape
from tracking.region import Gate

WIDTH_PROFILE_KEY = "width_profile_mm"


@dataclass(frozen=True)
class Piece:
    """One state of material: its id, outline and attributes (``record`` holds the rest)."""

    piece_id: str
    length_mm: float
    width_mm: float
    line: str | None = None
    grade: str | None = None
    thickness_mm: float | None = None
    coil_no: str | None = None
    record: dict[str, Any] = field(default_factory=dict, compare=False)
    shape: Shape | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.shape is None:
            profile = self.record.get(WIDTH_PROFILE_KEY)
            if profile:
                shape = Shape(
                    float(self.length_mm),
                    tuple(float(s[0]) for s in profile),
                    tuple(float(s[1]) for s in profile),
                    tuple(float(s[2]) for s in profile),
                )
            else:
                shape = Shape.plain(self.length_mm, self.width_mm)
            object.__setattr__(self, "shape", shape)

    @property
    def outline(self) -> Shape:
        assert self.shape is not None
        return self.shape


@dataclass(frozen=True)
class Mark:
    """A reference mark's true position in a piece frame."""

    mark_id: str
    kind: str
    x_mm: float
    y_mm: float = 0.0


@dataclass(frozen=True)
class Edge:
    parent: str
    child: str
    op_index: int
    frame_map: FrameMap


class Genealogy:
    """Pieces, the operations between them, and maps between any two related pieces."""

    def __init__(self) -> None:
        self.pieces: dict[str, Piece] = {}
        self.operations: list[Operation] = []
        self._children: dict[str, list[Edge]] = {}
        self._parents: dict[str, list[Edge]] = {}
        self._consumed_by: dict[str, str] = {}
        self._explicit_marks: dict[str, list[Mark]] = {}
        self._seams: dict[str, list[float]] = {}
        self._path_cache: dict[tuple[str, str], list[FrameMap]] = {}

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_operations(
        cls,
        ops: Iterable[Operation],
        known_pieces: Mapping[str, Piece] | None = None,
        consumed: Collection[str] = (),
    ) -> Genealogy:
        """Build and validate. ``known_pieces`` are pieces stored earlier that these operations
        may consume; ``consumed`` names those of them an earlier operation already consumed."""
        g = cls()
        for piece in (known_pieces or {}).values():
            g.pieces[piece.piece_id] = piece
        for piece_id in consumed:
            g._consumed_by[piece_id] = "an earlier import"
        for op in ops:
            g.add(op)
        return g

    def add(self, op: Operation) -> None:
        rec = op.record
        try:
            if op.kind == "create":
                self._check_new(op, ("piece",))
                self._add_piece(op, op.outputs[0], Shape.plain(rec["length_mm"], rec["width_mm"]), None)
            elif op.kind == "mark":
                self._add_mark(op)
            else:
                self._add_transform(op)
        except OpParamError as exc:
            raise op.error(str(exc), exc.field) from None
        self.operations.append(op)

    def _add_transform(self, op: Operation) -> None:
        rec = op.record
        input_field = "inputs" if op.kind == "weld" else "input"
        if len(set(op.inputs)) != len(op.inputs):
            raise op.error("the same piece is listed twice", input_field)
        for p in op.inputs:
            if p not in self.pieces:
                raise op.error(f"unknown piece {p!r}", input_field)
            if p in self._consumed_by:
                raise op.error(f"piece {p!r} was already consumed by {self._consumed_by[p]}", input_field)
        out_field = "outputs" if op.kind in ("cut", "slit") else "output"
        self._check_new(op, (out_field,))
        parents = [self.pieces[p] for p in op.inputs]
        shapes = [p.outline for p in parents]
        src = op.inputs[0]
        results: list[tuple[str, str, FrameMap, Shape]] = []  # (parent, child, map, shape)
        if op.kind == "crop":
            m, s = opx.crop(shapes[0], src, head_mm=rec["head_mm"], tail_mm=rec["tail_mm"])
            results.append((src, op.outputs[0], m, s))
        elif op.kind == "trim":
            m, s = opx.trim(shapes[0], src, os_mm=rec["os_mm"], ds_mm=rec["ds_mm"])
            results.append((src, op.outputs[0], m, s))
        elif op.kind == "orient":
            m, s = opx.orient(shapes[0], src, how=rec["how"])
            results.append((src, op.outputs[0], m, s))
        elif op.kind == "elongate":
            m, s = opx.elongate(
                shapes[0],
                src,
                factor=rec.get("factor"),
                knots=rec.get("knots"),
                width_factor=rec.get("width_factor", 1.0),
            )
            results.append((src, op.outputs[0], m, s))
        elif op.kind == "weld":
            maps, s = opx.weld(shapes, list(op.inputs))
            results.extend((p, op.outputs[0], m, s) for p, m in zip(op.inputs, maps, strict=True))
            self._seams[op.outputs[0]] = opx.seam_positions_mm(shapes)
        elif op.kind == "cut":
            bands = [(o["from_mm"], o["to_mm"]) for o in rec["outputs"]]
            for out, (m, s) in zip(op.outputs, opx.cut(shapes[0], src, bands), strict=True):
                results.append((src, out, m, s))
        elif op.kind == "slit":
            bands = [(o["y_from_mm"], o["y_to_mm"]) for o in rec["outputs"]]
            for out, (m, s) in zip(op.outputs, opx.slit(shapes[0], src, bands), strict=True):
                results.append((src, out, m, s))
        else:  # pragma: no cover - events.py admits no other kinds
            raise op.error(f"unsupported operation {op.kind!r}", "op")
        index = len(self.operations)
        seen_children: set[str] = set()
        for parent, child, m, s in results:
            if child not in seen_children:
                self._add_piece(op, child, s, parents[0])
                seen_children.add(child)
            edge = Edge(parent, child, index, m)
            self._children.setdefault(parent, []).append(edge)
            self._parents.setdefault(child, []).append(edge)
        where = f"{op.kind} at {op.source}:{op.line_no}"
        for p in op.inputs:
            self._consumed_by[p] = where

    def _check_new(self, op: Operation, fields: tuple[str, ...]) -> None:
        if len(set(op.outputs)) != len(op.outputs):
            raise op.error("the same output piece id is listed twice", fields[0])
        for out in op.outputs:
            if out in op.inputs or any(out in self.ancestors(p) for p in op.inputs):
                raise op.error(
                    f"cycle: output {out!r} is one of its own inputs or their ancestors", fields[0]
                )
            if out in self.pieces:
                raise op.error(f"duplicate piece id {out!r}", fields[0])

    def _add_piece(self, op: Operation, piece_id: str, shape: Shape, parent: Piece | None) -> None:
        rec = op.record
        out_rec: dict[str, Any] = {}
        if op.kind in ("cut", "slit"):
            out_rec = next(o for o in rec["outputs"] if o["piece"] == piece_id)
        thickness = out_rec.get("thickness_mm", rec.get("thickness_mm"))
        if thickness is None and parent is not None and parent.thickness_mm is not None:
            thickness = parent.thickness_mm
            if op.kind == "elongate":
                # Volume is conserved in rolling: thinner by the length and width factors.
                ratio = shape.length_mm / parent.length_mm * float(rec.get("width_factor", 1.0))
                thickness = parent.thickness_mm / ratio
        record = {k: v for k, v in rec.items() if k not in ("op", "outputs")}
        record.update({k: v for k, v in out_rec.items() if k != "piece"})
        if len(shape.seg_width_mm) > 1 and len(set(shape.seg_width_mm)) > 1:
            record[WIDTH_PROFILE_KEY] = [list(s) for s in shape.segments()]
        else:
            record.pop(WIDTH_PROFILE_KEY, None)
        self.pieces[piece_id] = Piece(
            piece_id=piece_id,
            length_mm=shape.length_mm,
            width_mm=shape.width_mm,
            line=out_rec.get("line", rec.get("line", parent.line if parent else None)),
            grade=out_rec.get("grade", rec.get("grade", parent.grade if parent else None)),
            thickness_mm=None if thickness is None else float(thickness),
            coil_no=out_rec.get("coil_no", rec.get("coil_no")),
            record=record,
            shape=shape,
        )

    def _add_mark(self, op: Operation) -> None:
        rec = op.record
        piece_id = rec["piece"]
        piece = self.pieces.get(piece_id)
        if piece is None:
            raise op.error(f"unknown piece {piece_id!r}", "piece")
        x, y = float(rec["x_mm"]), float(rec.get("y_mm", 0.0))
        if not 0.0 <= x <= piece.length_mm:
            raise op.error(f"{x:g} is outside the piece (0..{piece.length_mm:g} mm)", "x_mm")
        if abs(y) > piece.width_mm / 2.0:
            raise op.error(f"{y:g} is outside the strip width ({piece.width_mm:g} mm)", "y_mm")
        mark_id = rec["mark"]
        if any(m.mark_id == mark_id for marks in self._explicit_marks.values() for m in marks):
            raise op.error(f"duplicate mark id {mark_id!r}", "mark")
        kind = str(rec.get("kind", "hole"))
        self._explicit_marks.setdefault(piece_id, []).append(Mark(mark_id, kind, x, y))

    # -- the graph --------------------------------------------------------------------------
    def piece(self, piece_id: str) -> Piece:
        try:
            return self.pieces[piece_id]
        except KeyError:
            raise NotFoundError(f"unknown piece {piece_id!r}") from None

    def parents(self, piece_id: str) -> list[str]:
        return _unique(e.parent for e in self._parents.get(piece_id, []))

    def children(self, piece_id: str) -> list[str]:
        return _unique(e.child for e in self._children.get(piece_id, []))

    def ancestors(self, piece_id: str) -> list[str]:
        """All ancestors, nearest first (breadth-first), not including the piece."""
        return self._walk(piece_id, self.parents)

    def descendants(self, piece_id: str) -> list[str]:
        return self._walk(piece_id, self.children)

    def leaves(self) -> list[str]:
        """Pieces no operation has consumed (final coils, or work in progress)."""
        return [p for p in self.pieces if not self._children.get(p)]

    def roots(self) -> list[str]:
        return [p for p in self.pieces if not self._parents.get(p)]

    @staticmethod
    def _walk(start: str, step) -> list[str]:  # type: ignore[no-untyped-def]
        seen: dict[str, None] = {}
        frontier = [start]
        while frontier:
            nxt = []
            for p in frontier:
                for q in step(p):
                    if q not in seen and q != start:
                        seen[q] = None
                        nxt.append(q)
            frontier = nxt
        return list(seen)

    # -- maps -------------------------------------------------------------------------------
    def path_maps(self, src: str, dst: str) -> list[FrameMap]:
        """The frame maps from ``src`` to ``dst``, one per genealogy path (usually one)."""
        key = (src, dst)
        cached = self._path_cache.get(key)
        if cached is not None:
            return cached
        self.piece(src)
        self.piece(dst)
        outside = FrameMap.identity()
        outside = FrameMap(
            outside.fx, outside.fy, False, (Gate("outside", src, self.pieces[src].outline.extent_rects()),)
        )
        if src == dst:
            maps = [outside]
        else:
            forward = self._forward_maps(src, dst)
            if forward:
                maps = [outside.then(m) for m in forward]
            else:
                backward = self._forward_maps(dst, src)
                if not backward:
                    raise NotFoundError(f"pieces {src!r} and {dst!r} are not related by any genealogy path")
                maps = [outside.then(m.inverse()) for m in backward]
        self._path_cache[key] = maps
        return maps

    def _forward_maps(self, src: str, dst: str) -> list[FrameMap]:
        """The maps along every path from ``src`` down to ``dst`` (none if unrelated)."""
        # Only pieces that lead to dst are worth descending into: one walk up from dst,
        # instead of a walk down from every piece on the way.
        leads_to_dst = {dst, *self.ancestors(dst)}
        if src not in leads_to_dst:
            return []

        def down(piece: str) -> list[FrameMap]:
            if piece == dst:
                return [FrameMap.identity()]
            return [
                edge.frame_map.then(rest)
                for edge in self._children.get(piece, [])
                if edge.child in leads_to_dst
                for rest in down(edge.child)
            ]

        return down(src)

    def path_map(self, src: str, dst: str) -> FrameMap:
        return self.path_maps(src, dst)[0]

    def map_points(
        self, src: str, dst: str, x_mm: np.ndarray, y_mm: np.ndarray, is_top: np.ndarray
    ) -> MappedPoints:
        """Points of ``src`` in the frame of ``dst`` (ancestor or descendant), with status."""
        results = [m.map_points(x_mm, y_mm, is_top) for m in self.path_maps(src, dst)]
        return _merge(results)

    def map_boxes(
        self,
        src: str,
        dst: str,
        x0_mm: np.ndarray,
        y0_mm: np.ndarray,
        x1_mm: np.ndarray,
        y1_mm: np.ndarray,
        is_top: np.ndarray,
    ) -> MappedBoxes:
        results = [m.map_boxes(x0_mm, y0_mm, x1_mm, y1_mm, is_top) for m in self.path_maps(src, dst)]
        return _merge(results)  # type: ignore[return-value]

    def map_geometries(self, src: str, dst: str, geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shapely geometries of ``src`` clipped and mapped into ``dst``; returns
        ``(geometries, status)`` with status ``'kept'`` or ``'removed:<op>'``."""
        m = self.path_map(src, dst)
        mapped, removed = m.map_geometries(geoms)
        labels = np.array(["kept"] + [f"removed:{g.op}" for g in m.gates], dtype=object)
        return mapped, labels[removed + 1]

    # -- reference marks ----------------------------------------------------------------------
    def marks(self, piece_id: str) -> list[Mark]:
        """True positions of every reference mark on the piece, sorted along its length: its
        head and tail, the weld seams and explicit marks of it and its ancestors that survive."""
        piece = self.piece(piece_id)
        out = [Mark(f"{piece_id}:head", "head", 0.0), Mark(f"{piece_id}:tail", "tail", piece.length_mm)]
        for owner in [piece_id, *self.ancestors(piece_id)]:
            found = [Mark(f"{owner}:seam{k}", "weld", x) for k, x in enumerate(self._seams.get(owner, []), 1)]
            found += self._explicit_marks.get(owner, [])
            if not found:
                continue
            x = np.array([m.x_mm for m in found])
            y = np.array([m.y_mm for m in found])
            res = self.map_points(owner, piece_id, x, y, np.ones(len(found), dtype=bool))
            for m, mx, my, kept in zip(found, res.x_mm, res.y_mm, res.kept, strict=True):
                if kept:
                    out.append(Mark(m.mark_id, m.kind, float(mx), float(my)))
        return sorted(out, key=lambda m: (m.x_mm, m.mark_id))


def _merge(results: list[MappedPoints]) -> MappedPoints:
    """Several genealogy paths: each point takes the first path that keeps it."""
    first = results[0]
    if len(results) == 1:
        return first
    fields = dict(first.__dict__)
    for other in results[1:]:
        take = (fields["removed_gate"] != KEPT) & (other.removed_gate == KEPT)
        if not take.any():
            continue
        for name, value in other.__dict__.items():
            if isinstance(value, np.ndarray):
                fields[name] = np.where(take, value, fields[name])
    return type(first)(**fields)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
