"""The plant configuration: lines, stations, where their exports land, how often to ingest.

A TOML file (read with :mod:`tomllib`); relative paths are relative to the file's folder (or to
``base_dir`` when the configuration is built in memory). ``coilmap ingest config --from-plant
DIR`` writes one for a simulated plant folder. Example::

    database_url = "postgresql://coilmap@db/coilmap"   # optional; COILMAP_DATABASE_URL wins
    image_root = "images"                # ROI crops and heatmaps (COILMAP_IMAGE_ROOT wins)
    events = ["events/*.jsonl"]          # tracking events files, each imported once
    events_interval_s = 60
    pending_grace_s = 3600               # how long a record may wait for its piece's events
    settle_s = 5                         # a file younger than this may still be being written
    batch_files = 8                      # frames per batch (one transaction)

    [detector]
    anomaly_model = "models/anomaly.pt"
    classifier_model = "models/classifier.pt"
    workers = 2                          # a frame's tiles scored as 2 runs at once (default 1)

    [[lines]]
    code = "PL"
    unwind = "turn"

    [[stations]]                         # a frame station may name its own models
    code = "HSM-T"
    line = "HSM"
    side = "top"
    export = "frames"
    folder = "stations/HSM-T"
    anomaly_model = "models/hsm_t_anomaly.pt"   # else [detector] anomaly_model

    [[stations]]
    code = "PL-T"
    line = "PL"
    side = "top"
    vendor = "SurfSpec"
    export = "csv_table"                 # frames | csv_table | sqlite_table
    folder = "stations/PL-T"
    interval_s = 30
    y_axis_toward = "os"
    [stations.label_map]
    "Scratch" = "scratches"
    "Dirt" = "pseudo"

>>> cfg = parse_config({"stations": [{"code": "S", "line": "L", "side": "top",
...     "export": "frames", "folder": "s"}]}, base_dir=Path("/plant"))
>>> cfg.stations[0].folder, cfg.stations[0].interval_s, [line.code for line in cfg.lines]
(PosixPath('/plant/s'), 60.0, ['L'])
>>> parse_config(dumps_config(cfg), base_dir=Path("/plant")) == cfg
True
"""

from __future__ import annotations

import glob
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coilmap.datasplit import PSEUDO
from coilmap.errors import InputError

EXPORT_KINDS = ("frames", "csv_table", "sqlite_table")
# A vendor label of these is a pseudo-defect (mapped to coilmap.datasplit.PSEUDO): stored, not a defect.
PSEUDO_VENDOR_CLASSES = ("dirt", "oil", "water")


@dataclass(frozen=True)
class LineConfig:
    code: str
    unwind: str | None = None


@dataclass(frozen=True)
class StationConfig:
    code: str
    line: str
    side: str
    export: str
    folder: Path
    vendor: str | None = None
    interval_s: float = 60.0
    y_axis_toward: str = "os"
    inspects: str = "exit"
    label_map: dict[str, str] = field(default_factory=dict)
    # This station's own frame models (its camera, its surface); None: the [detector] ones.
    anomaly_model: Path | None = None
    classifier_model: Path | None = None


@dataclass(frozen=True)
class PlantConfig:
    stations: tuple[StationConfig, ...]
    lines: tuple[LineConfig, ...] = ()
    database_url: str | None = None
    image_root: Path | None = None
    events: tuple[str, ...] = ()
    events_interval_s: float = 60.0
    pending_grace_s: float = 3600.0
    settle_s: float = 5.0
    sidecar_wait_s: float = 60.0
    batch_files: int = 8
    max_attempts: int = 3
    position_tolerance_mm: float = 100.0
    anomaly_model: Path | None = None
    classifier_model: Path | None = None
    # A frame's tiles scored as this many runs at once, one torch thread each ([detector] workers).
    scoring_workers: int = 1
    # The fused classifier applied after each run that stored observations (None: no fusion).
    fused_model: Path | None = None
    source: str = "<config>"

    def station(self, code: str) -> StationConfig:
        for st in self.stations:
            if st.code == code:
                return st
        raise InputError(f"no station {code!r} in the configuration", source=self.source)

    def line_stations(self, line: str) -> list[StationConfig]:
        found = [st for st in self.stations if st.line == line]
        if not found:
            known = sorted({st.line for st in self.stations})
            raise InputError(
                f"no station on line {line!r} in the configuration (lines: {known})", source=self.source
            )
        return found

    def events_files(self) -> list[Path]:
        """The tracking events files the globs match now, sorted by name."""
        out: set[Path] = set()
        for pattern in self.events:
            out.update(Path(p) for p in glob.glob(pattern))
        return sorted(p for p in out if p.is_file())

    def resolved_image_root(self) -> Path:
        env = os.environ.get("COILMAP_IMAGE_ROOT")
        if env:
            return Path(env)
        if self.image_root is None:
            raise InputError(
                "no image store: set image_root in the configuration or COILMAP_IMAGE_ROOT",
                source=self.source,
            )
        return self.image_root


def _get(d: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = ...) -> Any:
    if key not in d:
        if default is ...:
            raise InputError("missing", source=where, field=key)
        return default
    value = d[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise InputError(f"wrong type {type(value).__name__}", source=where, field=key)
    return value


def _path(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    p = Path(value)
    return p if p.is_absolute() else base / p


def parse_config(raw: dict[str, Any], *, base_dir: Path, source: str = "<config>") -> PlantConfig:
    """A :class:`PlantConfig` from the parsed TOML (every error names the field)."""
    stations = []
    raw_stations = _get(raw, "stations", list, source)
    codes: set[str] = set()
    for i, s in enumerate(raw_stations):
        where = f"{source} stations[{i}]"
        if not isinstance(s, dict):
            raise InputError("must be a table", source=where)
        code = _get(s, "code", str, where)
        if code in codes:
            raise InputError(f"station {code!r} is listed twice", source=where, field="code")
        codes.add(code)
        side = _get(s, "side", str, where)
        if side not in ("top", "bottom"):
            raise InputError(f"must be top or bottom, got {side!r}", source=where, field="side")
        export = _get(s, "export", str, where)
        if export not in EXPORT_KINDS:
            raise InputError(f"must be one of {EXPORT_KINDS}, got {export!r}", source=where, field="export")
        y_axis = _get(s, "y_axis_toward", str, where, "os")
        if y_axis not in ("os", "ds"):
            raise InputError(f"must be os or ds, got {y_axis!r}", source=where, field="y_axis_toward")
        interval = _get(s, "interval_s", float, where, 60.0)
        if interval <= 0:
            raise InputError("must be positive", source=where, field="interval_s")
        label_map = _get(s, "label_map", dict, where, {})
        if not all(isinstance(v, str) for v in label_map.values()):
            raise InputError("every plant class must be a string", source=where, field="label_map")
        if export != "frames" and not label_map:
            raise InputError("a vendor table station needs a label map", source=where, field="label_map")
        stations.append(
            StationConfig(
                code=code,
                line=_get(s, "line", str, where),
                side=side,
                export=export,
                folder=_path(base_dir, _get(s, "folder", str, where)),  # type: ignore[arg-type]
                vendor=_get(s, "vendor", str, where, None),
                interval_s=interval,
                y_axis_toward=y_axis,
                inspects=_get(s, "inspects", str, where, "exit"),
                label_map=dict(label_map),
                anomaly_model=_path(base_dir, _get(s, "anomaly_model", str, where, None)),
                classifier_model=_path(base_dir, _get(s, "classifier_model", str, where, None)),
            )
        )
    lines = {
        line.code: line
        for line in (
            LineConfig(
                _get(x, "code", str, f"{source} lines"), _get(x, "unwind", str, f"{source} lines", None)
            )
            for x in _get(raw, "lines", list, source, [])
        )
    }
    for st in stations:
        lines.setdefault(st.line, LineConfig(st.line))
    det = _get(raw, "detector", dict, source, {})
    events = tuple(str(_path(base_dir, e)) for e in _get(raw, "events", list, source, []))
    cfg = PlantConfig(
        stations=tuple(stations),
        lines=tuple(lines.values()),
        database_url=_get(raw, "database_url", str, source, None),
        image_root=_path(base_dir, _get(raw, "image_root", str, source, None)),
        events=events,
        events_interval_s=_get(raw, "events_interval_s", float, source, 60.0),
        pending_grace_s=_get(raw, "pending_grace_s", float, source, 3600.0),
        settle_s=_get(raw, "settle_s", float, source, 5.0),
        sidecar_wait_s=_get(raw, "sidecar_wait_s", float, source, 60.0),
        batch_files=_get(raw, "batch_files", int, source, 8),
        max_attempts=_get(raw, "max_attempts", int, source, 3),
        position_tolerance_mm=_get(raw, "position_tolerance_mm", float, source, 100.0),
        anomaly_model=_path(base_dir, _get(det, "anomaly_model", str, f"{source} detector", None)),
        classifier_model=_path(base_dir, _get(det, "classifier_model", str, f"{source} detector", None)),
        scoring_workers=_get(det, "workers", int, f"{source} detector", 1),
        fused_model=_path(
            base_dir, _get(_get(raw, "fusion", dict, source, {}), "model", str, f"{source} fusion", None)
        ),
        source=source,
    )
    if cfg.batch_files < 1:
        raise InputError("must be at least 1", source=source, field="batch_files")
    if not 1 <= cfg.scoring_workers <= 64:
        raise InputError("must be 1 to 64", source=f"{source} detector", field="workers")
    return cfg


def load_config(path: str | Path) -> PlantConfig:
    path = Path(path)
    if not path.is_file():
        raise InputError("no such configuration file", source=str(path))
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML ({exc})", source=str(path)) from exc
    return parse_config(raw, base_dir=path.resolve().parent, source=str(path))


# --- writing ------------------------------------------------------------------------------


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str | Path):
        return json.dumps(str(v))  # a JSON string is a valid TOML basic string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps_config(cfg: PlantConfig) -> dict[str, Any]:
    """The configuration as the plain dict :func:`parse_config` reads (absolute paths)."""
    raw: dict[str, Any] = {
        "events": list(cfg.events),
        "events_interval_s": cfg.events_interval_s,
        "pending_grace_s": cfg.pending_grace_s,
        "settle_s": cfg.settle_s,
        "sidecar_wait_s": cfg.sidecar_wait_s,
        "batch_files": cfg.batch_files,
        "max_attempts": cfg.max_attempts,
        "position_tolerance_mm": cfg.position_tolerance_mm,
    }
    if cfg.database_url:
        raw["database_url"] = cfg.database_url
    if cfg.image_root is not None:
        raw["image_root"] = str(cfg.image_root)
    det: dict[str, Any] = dict(_model_paths(cfg.anomaly_model, cfg.classifier_model))
    if cfg.scoring_workers != 1:
        det["workers"] = cfg.scoring_workers
    if det:
        raw["detector"] = det
    if cfg.fused_model is not None:
        raw["fusion"] = {"model": str(cfg.fused_model)}
    raw["lines"] = [{"code": x.code, **({"unwind": x.unwind} if x.unwind else {})} for x in cfg.lines]
    raw["stations"] = [
        {
            "code": s.code,
            "line": s.line,
            "side": s.side,
            "export": s.export,
            "folder": str(s.folder),
            **({"vendor": s.vendor} if s.vendor else {}),
            "interval_s": s.interval_s,
            "y_axis_toward": s.y_axis_toward,
            "inspects": s.inspects,
            **_model_paths(s.anomaly_model, s.classifier_model),
            "label_map": dict(s.label_map),
        }
        for s in cfg.stations
    ]
    return raw


def _model_paths(anomaly_model: Path | None, classifier_model: Path | None) -> dict[str, str]:
    """The detector's model files as written (plant-wide in [detector], or a station's own)."""
    named = (("anomaly_model", anomaly_model), ("classifier_model", classifier_model))
    return {k: str(v) for k, v in named if v is not None}


def to_toml(cfg: PlantConfig) -> str:
    raw = dumps_config(cfg)
    out = ["# coilmap ingestion configuration (docs/ingestion.md)"]
    tables = {k: raw.pop(k) for k in ("detector", "fusion", "lines", "stations") if k in raw}
    out += [f"{k} = {_toml_value(v)}" for k, v in raw.items()]
    if "detector" in tables:
        out += ["", "[detector]"] + [f"{k} = {_toml_value(v)}" for k, v in tables["detector"].items()]
    if "fusion" in tables:
        out += ["", "[fusion]"] + [f"{k} = {_toml_value(v)}" for k, v in tables["fusion"].items()]
    for line in tables["lines"]:
        out += ["", "[[lines]]"] + [f"{k} = {_toml_value(v)}" for k, v in line.items()]
    for st in tables["stations"]:
        labels = st.pop("label_map")
        out += ["", "[[stations]]"] + [f"{k} = {_toml_value(v)}" for k, v in st.items()]
        if labels:
            out += ["[stations.label_map]"] + [
                f"{json.dumps(k)} = {json.dumps(v)}" for k, v in labels.items()
            ]
    return "\n".join(out) + "\n"


def config_from_plant(
    plant_dir: str | Path,
    *,
    image_root: str | Path | None = None,
    interval_s: float = 60.0,
    database_url: str | None = None,
) -> PlantConfig:
    """The configuration of a simulated plant folder (``coilmap simulate``): one station per
    ``stations/<ST>/station.json``, vendor labels mapped back to the plant classes (dirt, oil
    and water to ``pseudo``), the plant's ``events.jsonl`` as the tracking events."""
    plant_dir = Path(plant_dir).resolve()
    meta_path = plant_dir / "plant.json"
    if not meta_path.is_file():
        raise InputError("not a simulated plant folder (no plant.json)", source=str(plant_dir))
    plant = json.loads(meta_path.read_text(encoding="utf-8"))
    unwind = plant.get("orientation_at_entry", {})
    stations = []
    for code in plant.get("stations", []):
        sjson = plant_dir / "stations" / code / "station.json"
        if not sjson.is_file():
            raise InputError("station description missing", source=str(sjson))
        d = json.loads(sjson.read_text(encoding="utf-8"))
        labels = {
            v: (PSEUDO if k in PSEUDO_VENDOR_CLASSES else k) for k, v in d.get("vendor_classes", {}).items()
        }
        stations.append(
            StationConfig(
                code=d["station"],
                line=d["line"],
                side=d["side"],
                export=d["export"],
                folder=sjson.parent,
                vendor=d.get("vendor"),
                interval_s=float(interval_s),
                y_axis_toward=d.get("y_axis_toward", "os"),
                inspects=d.get("inspects", "exit"),
                label_map=labels,
            )
        )
    lines = tuple(LineConfig(code, unwind.get(code)) for code in plant.get("lines", []))
    return PlantConfig(
        stations=tuple(stations),
        lines=lines,
        database_url=database_url,
        image_root=Path(image_root).resolve() if image_root else plant_dir / "images",
        events=(str(plant_dir / "events.jsonl"),),
        # The simulator writes its folder completely before anyone reads it: nothing is still
        # being written, so nothing needs to settle (a live station's configuration keeps 5 s).
        settle_s=0.0,
        sidecar_wait_s=0.0,
        anomaly_model=_if_file(PLANT_FRAME_SCORER),
        classifier_model=_if_file(PLANT_FRAME_CLASSIFIER),
        fused_model=_default_fused_model(),
        source=str(meta_path),
    )


# The demo plant's own frame models, trained on a simulated plant of another seed (its clean
# frames and its labelled defect crops: docs/detection-plant-frames.md). A real plant names its
# own in [detector]; without them the job takes the project's magnetic-tile and NEU defaults.
MODELS_DIR = Path(__file__).resolve().parent.parent / "detection" / "default_models"
PLANT_FRAME_SCORER = MODELS_DIR / "plant_frames_anomaly.pt"
PLANT_FRAME_CLASSIFIER = MODELS_DIR / "plant_frames_classifier.pt"


def _if_file(path: Path) -> Path | None:
    """``path`` when the repository has that file, else None."""
    return path if path.is_file() else None


def _default_fused_model() -> Path | None:
    """The project's default fused classifier, when the repository has one."""
    from fusion.model_file import DEFAULT_MODEL

    return _if_file(DEFAULT_MODEL)
