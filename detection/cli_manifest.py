"""The JSON manifests beside model files, as the detection commands write them: the running
command rebuilt for the record, a member's manifest read, one key updated under a lock."""

from __future__ import annotations

import fcntl
import json
import os
import shlex
from pathlib import Path
from typing import Any

import click
import numpy as np


def command_line() -> str:
    """The running command as typed, rebuilt from click's context: arguments, options not at
    their default (an option given several times once per value), flags that are on.

    Run from another entry point (a test's runner), the command is named as a user would type
    it, ``coilmap detect <command>``.
    """
    ctx = click.get_current_context()
    path = ctx.command_path if ctx.command_path.startswith("coilmap") else f"coilmap detect {ctx.info_name}"
    words = [path]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            values = value if isinstance(value, tuple | list) else () if value is None else (value,)
            words += [shlex.quote(str(v)) for v in values]
        elif isinstance(value, tuple):  # an option given several times
            words += [w for v in value for w in (param.opts[0], shlex.quote(str(v)))]
        elif value is not None and value != param.default and value is not False:
            flag = param.opts[0]
            words += [flag] if value is True else [flag, shlex.quote(str(value))]
    return " ".join(words)


def read_manifest(model_path: str | Path) -> dict[str, Any]:
    """The JSON manifest beside ``model_path`` (``<stem>.json``), or ``{}`` where it has none."""
    path = Path(model_path).with_suffix(".json")
    return json.loads(path.read_text()) if path.is_file() else {}


def source_models(out_path: str | Path, **model_paths: str | Path) -> dict[str, dict[str, Any]]:
    """Each model another was made from (by role: ``segmenter=...``), named relative to the new
    model's folder, with the command that made it (from its manifest)."""
    folder = Path(out_path).resolve().parent
    return {role: {"model": os.path.relpath(Path(p).resolve(), folder),
                   "command": read_manifest(p).get("command")} for role, p in model_paths.items()}


def retuned_manifest(old: dict[str, Any], retuned: dict[str, Any], *,
                     drop: tuple[str, ...]) -> dict[str, Any]:
    """The manifest of a model whose scoring was changed without training: everything ``old``
    said of how it was made, less the keys in ``drop`` (its figures, no longer true, and what
    the saver writes itself); ``retuned`` (this change) last, an earlier one kept in
    ``retuned_earlier``."""
    manifest = {k: v for k, v in old.items() if k not in drop}
    if old.get("retuned"):
        manifest["retuned_earlier"] = [*old.get("retuned_earlier", []), old["retuned"]]
    manifest["retuned"] = retuned
    return manifest


def update_manifest(manifest_path: Path, key: str, value: dict[str, Any]) -> None:
    """Set ``key`` in a JSON manifest, holding a lock on it from read to write, so that two
    evaluations writing different keys at once (test and synthetic val) both keep theirs."""
    with manifest_path.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        handle.seek(0)
        text = handle.read()
        manifest = json.loads(text) if text.strip() else {}
        manifest[key] = value
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(manifest, indent=2, default=json_default) + "\n")


def json_default(value: Any) -> Any:
    """numpy scalars as Python numbers, anything else as its string (paths)."""
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
