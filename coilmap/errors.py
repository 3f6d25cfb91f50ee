"""Domain exceptions shared by every area.

Each error says what was wrong and where (file, line, field, id), so an engineer can fix the
input without reading a traceback. The CLI prints ``str(error)`` and exits with status 2.
"""

from __future__ import annotations


class CoilmapError(Exception):
    """Base class of every error the CLI reports as a clear message."""


class InputError(CoilmapError):
    """Bad input in a file: names the file, the line (1-based) and the field.

    >>> str(InputError("bad width", source="events.jsonl", line=3, field="width_mm"))
    'events.jsonl:3: field width_mm: bad width'
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.line = line
        self.field = field
        where = ""
        if source is not None:
            where = source if line is None else f"{source}:{line}"
            where += ": "
        elif line is not None:
            where = f"line {line}: "
        what = f"field {field}: " if field else ""
        super().__init__(f"{where}{what}{message}")


class NotFoundError(CoilmapError):
    """A piece, station, line or model that was asked for does not exist."""
