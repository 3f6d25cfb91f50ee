"""The tracking events file: JSON Lines, one operation per line (extra fields allowed).

Reading checks the form of every record (its kind, the fields it needs, their types) and names
the file, line and field of the first problem; the meaning (do the pieces exist, does a cut fit
the coil) is checked by :class:`tracking.genealogy.Genealogy`.

>>> ops = parse_events(['{"op":"create","piece":"H1","length_mm":500000,"width_mm":1250}',
...                     '{"op":"crop","input":"H1","output":"H1a","head_mm":2000,"tail_mm":1500}'],
...                    source="demo.jsonl")
>>> [(o.kind, o.inputs, o.outputs, o.line_no) for o in ops]
[('create', (), ('H1',), 1), ('crop', ('H1',), ('H1a',), 2)]
>>> parse_events(['{"op":"crop","input":"H1","output":"H1a","head_mm":"x","tail_mm":0}'], "e.jsonl")
Traceback (most recent call last):
...
coilmap.errors.InputError: e.jsonl:1: field head_mm: must be a number, got 'x'
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coilmap.errors import InputError

KINDS = ("create", "crop", "trim", "orient", "elongate", "weld", "cut", "slit", "mark")


@dataclass(frozen=True)
class Operation:
    """One line of an events file."""

    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    record: dict[str, Any] = field(compare=False)
    source: str = "<events>"
    line_no: int = 0

    @classmethod
    def from_record(cls, record: dict[str, Any], source: str = "<events>", line_no: int = 0) -> Operation:
        """The operation of one event record (checked exactly as a line of a file is)."""
        return _operation(record, source, line_no)

    def error(self, message: str, field_name: str | None = None) -> InputError:
        return InputError(message, source=self.source, line=self.line_no, field=field_name)


def read_events(path: str | Path) -> list[Operation]:
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as fh:
            return parse_events(fh, source=str(path))
    except FileNotFoundError:
        raise InputError("no such events file", source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason})", source=str(path)) from None


def parse_events(lines: Iterable[str], source: str = "<events>") -> list[Operation]:
    ops = []
    for line_no, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"not valid JSON ({exc.msg} at column {exc.colno})", source=source, line=line_no
            ) from None
        if not isinstance(record, dict):
            raise InputError("each line must be a JSON object", source=source, line=line_no)
        ops.append(_operation(record, source, line_no))
    return ops


def _operation(rec: dict[str, Any], source: str, line_no: int) -> Operation:
    def err(message: str, name: str) -> InputError:
        return InputError(message, source=source, line=line_no, field=name)

    kind = rec.get("op")
    if kind not in KINDS:
        raise err(f"unknown operation {kind!r}; expected one of {', '.join(KINDS)}", "op")
    check = _Checker(rec, err)
    if kind == "create":
        check.piece_id("piece")
        check.number("length_mm", positive=True)
        check.number("width_mm", positive=True)
        for name in ("thickness_mm",):
            if name in rec:
                check.number(name, positive=True)
        return Operation(kind, (), (rec["piece"],), rec, source, line_no)
    if kind == "mark":
        check.piece_id("piece")
        check.piece_id("mark")
        check.number("x_mm")
        if "y_mm" in rec:
            check.number("y_mm")
        return Operation(kind, (rec["piece"],), (), rec, source, line_no)
    if kind == "weld":
        inputs = rec.get("inputs")
        if not isinstance(inputs, list) or len(inputs) < 2:
            raise err("must be a list of at least two piece ids", "inputs")
        for i, p in enumerate(inputs):
            if not isinstance(p, str) or not p:
                raise err(f"inputs[{i}] must be a non-empty piece id", "inputs")
        check.piece_id("output")
        return Operation(kind, tuple(inputs), (rec["output"],), rec, source, line_no)
    check.piece_id("input")
    if kind in ("cut", "slit"):
        outs = rec.get("outputs")
        if not isinstance(outs, list) or not outs:
            raise err("must be a non-empty list of outputs", "outputs")
        lo, hi = ("from_mm", "to_mm") if kind == "cut" else ("y_from_mm", "y_to_mm")
        names = []
        for i, out in enumerate(outs):
            if not isinstance(out, dict):
                raise err(f"outputs[{i}] must be an object", "outputs")
            sub = _Checker(out, lambda m, n, i=i: err(m, f"outputs[{i}].{n}"))
            sub.piece_id("piece")
            sub.number(lo)
            sub.number(hi)
            names.append(out["piece"])
        return Operation(kind, (rec["input"],), tuple(names), rec, source, line_no)
    check.piece_id("output")
    if kind == "crop":
        check.number("head_mm", nonneg=True)
        check.number("tail_mm", nonneg=True)
    elif kind == "trim":
        check.number("os_mm", nonneg=True)
        check.number("ds_mm", nonneg=True)
    elif kind == "orient":
        if rec.get("how") not in ("turn", "flip_cross", "flip_long"):
            raise err(f"must be turn, flip_cross or flip_long, got {rec.get('how')!r}", "how")
    elif kind == "elongate":
        if ("factor" in rec) == ("knots" in rec):
            raise err("give exactly one of factor and knots", "factor")
        if "factor" in rec:
            check.number("factor", positive=True)
        else:
            knots = rec["knots"]
            if not isinstance(knots, list) or len(knots) < 2:
                raise err("must be a list of at least two [x, x'] pairs", "knots")
            for i, k in enumerate(knots):
                if not isinstance(k, list) or len(k) != 2 or not all(_is_number(v) for v in k):
                    raise err(f"knot {i} must be a pair of numbers [x, x'], got {k!r}", "knots")
        if "width_factor" in rec:
            check.number("width_factor", positive=True)
    return Operation(kind, (rec["input"],), (rec["output"],), rec, source, line_no)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


class _Checker:
    def __init__(self, rec: dict[str, Any], err) -> None:  # type: ignore[no-untyped-def]
        self.rec = rec
        self.err = err

    def piece_id(self, name: str) -> None:
        v = self.rec.get(name)
        if not isinstance(v, str) or not v.strip():
            raise self.err(f"must be a non-empty id string, got {v!r}", name)

    def number(self, name: str, *, positive: bool = False, nonneg: bool = False) -> None:
        if name not in self.rec:
            raise self.err("is missing", name)
        v = self.rec[name]
        if not _is_number(v):
            raise self.err(f"must be a number, got {v!r}", name)
        if positive and v <= 0:
            raise self.err(f"must be > 0, got {v!r}", name)
        if nonneg and v < 0:
            raise self.err(f"must be >= 0, got {v!r}", name)
