"""Writing a simulated plant to a folder: what the lines hand over, and the ground truth.

Layout (all formats in ``docs/plant.md``)::

    OUT/plant.json                      size, seed, lines, stations, counts
    OUT/events.jsonl                    tracking events (JSON Lines, one operation per line)
    OUT/stations/<ST>/station.json      the station's public description
    OUT/stations/<ST>/marks.csv         reference marks it saw (its encoder frame)
    OUT/stations/<ST>/edges.csv         strip edges it saw (its camera frame)
    OUT/stations/<ST>/frames/*.png|json frame images with sidecars       (export "frames")
    OUT/stations/<ST>/defects.csv, roi/ SurfSpec defect table + ROI images (export "csv_table")
    OUT/stations/<ST>/inspex.sqlite, roi/ InspeX defect database + ROIs  (export "sqlite_table")
    OUT/truth/...                       ground truth, for evaluation only
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from coilmap.datasplit import NEU_CLASSES
from coilmap.errors import InputError
from plant.crops import CropLibrary
from plant.frames import (
    FrameGrid,
    choose_frames,
    frame_overlaps,
    piece_frame_range,
    render_frame,
    render_roi,
    station_grid,
    strip_mask,
)
from plant.ledger import iso_time, iso_times
from plant.lines import SPEED_MM_S
from plant.params import APPEARANCE, StationSpec
from plant.render import STAGE_OF_LINE, pseudo_picture
from plant.simulate import PlantRun, StationRun, truth_positions
from plant.stations import INSPEX_CODES, VENDOR_CLASSES

FORMAT_VERSION = 1


def save_gray(path: Path, image01: np.ndarray) -> None:
    """An 8-bit grayscale PNG, fast zlib level (the pixels are noisy; more effort gains little)."""
    arr = np.clip(np.rint(image01 * 255.0), 0, 255).astype(np.uint8)
    Image.fromarray(arr, mode="L").save(path, compress_level=1)


def _csv(df: pd.DataFrame, path: Path, decimals: int | None = 3) -> None:
    """CSV with floats rounded to ``decimals`` (None: full precision). Rounding first and
    letting numpy print is many times faster than a per-value ``float_format``."""
    if decimals is not None:
        floats = df.select_dtypes("float").columns
        df = df.assign(**{c: df[c].round(decimals) for c in floats})
    df.to_csv(path, index=False, lineterminator="\n")


def _json(obj: object, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")


def prepare_out(out_dir: Path) -> None:
    """An empty output folder (an existing simulator output is replaced, nothing else)."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise InputError("the output path exists and is not a folder", source=str(out_dir))
        entries = list(out_dir.iterdir())
        if entries and not (out_dir / "plant.json").is_file():
            raise InputError("the output folder is not empty and holds no earlier plant "
                             "(refusing to overwrite it)", source=str(out_dir))
        for e in entries:
            shutil.rmtree(e) if e.is_dir() else e.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def write_plant(run: PlantRun, out_dir: Path, crops: CropLibrary | None) -> dict[str, int]:
    """Write everything; ``crops`` None writes no image files. Returns counts."""
    prepare_out(out_dir)
    led = run.route.ledger
    with (out_dir / "events.jsonl").open("w", encoding="utf-8", newline="\n") as f:
        for ev in led.events:
            f.write(json.dumps(ev, separators=(",", ":")) + "\n")
    counts = {"events": len(led.events), "pieces": len(led.pieces),
              "hot_coils": run.params.n_hot_coils, "final_pieces": len(led.final_pieces()),
              "physical_defects": len(run.catalogue), "images": 0}
    truth = out_dir / "truth"
    truth.mkdir()
    obs_tables, box_tables, enc_rows = [], [], []
    max_width = max(st.width_mm for st in led.pieces.values())
    for srun in run.stations:
        sdir = out_dir / "stations" / srun.spec.name
        sdir.mkdir(parents=True)
        n_img, boxes = _write_station(run, srun, sdir, crops, max_width)
        counts["images"] += n_img
        seen = srun.sightings["seen"].to_numpy()
        counts[f"observations:{srun.spec.name}"] = int(seen.sum())
        obs = srun.sightings.copy()
        obs.insert(1, "obs_key", np.where(seen, srun.spec.name + ":" + obs["obs_no"].astype(str),
                                          ""))
        obs_tables.append(obs.drop(columns=["flip_x", "flip_y"]))
        if boxes is not None:
            box_tables.append(boxes)
        for pid, enc in srun.encoders.items():
            enc_rows.append({"station": srun.spec.name, "piece": pid, **enc.__dict__})
    counts["observations"] = sum(v for k, v in counts.items() if k.startswith("observations:"))
    _csv(run.catalogue, truth / "defects.csv")
    _csv(truth_positions(run.route), truth / "positions.csv")
    _csv(pd.DataFrame(led.removed, columns=["defect_id", "piece", "op", "first_output"]),
         truth / "removed.csv")
    _csv(pd.concat(obs_tables, ignore_index=True), truth / "observations.csv")
    boxes = (pd.concat(box_tables, ignore_index=True) if box_tables else
             pd.DataFrame(columns=["station", "obs_key", "frame", "r0", "c0", "r1", "c1"]))
    _csv(boxes, truth / "frame_boxes.csv")
    _csv(pd.DataFrame(enc_rows), truth / "encoders.csv", decimals=None)
    _json(_plant_json(run, counts), out_dir / "plant.json")
    return counts


def _plant_json(run: PlantRun, counts: dict[str, int]) -> dict:
    p = run.params
    return {
        "format_version": FORMAT_VERSION, "size": p.size, "seed": run.seed,
        "lines": ["HSM", "PL", "TCM", "CAL", "SL"],
        "orientation_at_entry": p.orientations,
        "stations": [s.name for s in p.stations],
        "plant_classes": list(NEU_CLASSES),
        "counts": counts,
    }


def _station_json(spec: StationSpec, grid: FrameGrid | None) -> dict:
    d = {"station": spec.name, "line": spec.line, "side": spec.side, "inspects": spec.stage,
         "export": spec.export, "vendor": spec.vendor,
         "y_axis_toward": spec.y_axis, "mm_per_px_x": spec.mm_per_px_x,
         "mm_per_px_y": spec.mm_per_px_y}
    if grid is not None:
        d.update({"frame_rows": grid.rows, "frame_cols": grid.rows, "cameras": grid.n_cams,
                  "camera0_y0_mm": grid.y0_mm, "camera_width_mm": grid.cam_mm})
    if spec.export != "frames":
        d["vendor_classes"] = VENDOR_CLASSES[spec.vendor]
    return d


def _picture(run: PlantRun, crops: CropLibrary, row: pd.Series, rng: np.random.Generator,
             rows: int, cols: int, y_sign: float) -> tuple[np.ndarray, float]:
    """The object's picture (deviation from background) and its gain at this station."""
    spec_line = row["_line"]
    if row["kind"] == "pseudo":
        return pseudo_picture(rng, row["true_class"], rows, cols), 1.0
    cat = run.catalogue.iloc[int(row["defect_id"]) - 1]
    pic = crops.patch(cat["src_stem"], np.array([cat["src_x0"], cat["src_y0"], cat["src_x1"],
                                                 cat["src_y1"]]))
    if row["flip_x"]:
        pic = pic[::-1]
    if bool(row["flip_y"]) != (y_sign < 0):
        pic = pic[:, ::-1]
    # NEU pictures are low-contrast; a real defect on a moving strip reads a bit stronger.
    gain = 2.0 * APPEARANCE[spec_line].get(cat["true_class"], 1.0)
    if cat["severity"] == "severe":
        gain *= 1.3
    return np.ascontiguousarray(pic), gain


def _write_station(run: PlantRun, srun: StationRun, sdir: Path, crops: CropLibrary | None,
                   max_width: float) -> tuple[int, pd.DataFrame | None]:
    spec = srun.spec
    marks = srun.marks.assign(station=spec.name, time=[iso_time(t) for t in srun.marks["time_s"]])
    _csv(marks[["station", "piece", "mark_id", "x_obs_mm", "time"]], sdir / "marks.csv")
    edges = srun.edges.assign(station=spec.name)
    _csv(edges[["station", "piece", "x_obs_mm", "os_edge_mm", "ds_edge_mm"]], sdir / "edges.csv")
    grid = station_grid(spec, max_width, run.params.frame_rows) if spec.export == "frames" else None
    _json(_station_json(spec, grid), sdir / "station.json")
    if grid is not None:
        if crops is None:  # no images asked for: a frame station then exports no frames
            return 0, None
        return _write_frames(run, srun, sdir, crops, grid)
    return _write_table(run, srun, sdir, crops), None


def _write_frames(run: PlantRun, srun: StationRun, sdir: Path, crops: CropLibrary | None,
                  grid: FrameGrid) -> tuple[int, pd.DataFrame]:
    spec = srun.spec
    si = run.params.stations.index(spec)
    fdir = sdir / "frames"
    fdir.mkdir()
    stage = STAGE_OF_LINE[spec.line]
    led = run.route.ledger
    box_rows, n_img = [], 0
    seen = srun.sightings[srun.sightings["seen"]]
    for pi, pid in enumerate(srun.pieces):
        enc = srun.encoders[pid]
        piece = led.pieces[pid]
        objs = seen[seen["piece"] == pid].assign(_line=spec.line)
        ov = frame_overlaps(grid, objs["x_obs_mm"].to_numpy(), objs["y_obs_mm"].to_numpy(),
                            objs["length_obs_mm"].to_numpy(), objs["width_obs_mm"].to_numpy())
        ks = piece_frame_range(grid, enc, piece.length_mm)
        ov = ov[(ov["k"] >= ks.start) & (ov["k"] < ks.stop)]
        busy = set(zip(ov["k"].tolist(), ov["j"].tolist(), strict=True))
        frng = np.random.default_rng([run.seed, 3000 + si, pi])
        chosen = choose_frames(frng, busy, ks, grid.n_cams, run.params.blank_frame_ratio)
        for k, j in chosen:
            name = f"{pid}_{k:06d}_c{j}"
            here = ov[(ov["k"] == k) & (ov["j"] == j)]
            for _, o in here.iterrows():
                item = objs.iloc[int(o["item"])]
                clip = [int(np.clip(np.floor(o["r0"]), 0, grid.rows)),
                        int(np.clip(np.floor(o["c0"]), 0, grid.rows)),
                        int(np.clip(np.ceil(o["r1"]), 0, grid.rows)),
                        int(np.clip(np.ceil(o["c1"]), 0, grid.rows))]
                box_rows.append((spec.name, f"{spec.name}:{int(item['obs_no'])}",
                                 f"{name}.png", *clip))
            if crops is None:
                continue
            rrng = np.random.default_rng([run.seed, 4000 + si, pi, k, j])
            mask, x_true = strip_mask(grid, k, j, enc, piece.length_mm, piece.width_mm)
            drawn = []
            for _, o in here.iterrows():
                item = objs.iloc[int(o["item"])]
                rows = max(int(np.ceil(o["r1"] - o["r0"])), 1)
                cols = max(int(np.ceil(o["c1"] - o["c0"])), 1)
                pic, gain = _picture(run, crops, item, rrng, rows, cols, enc.y_sign)
                drawn.append((pic, o["r0"], o["c0"], o["r1"], o["c1"], gain * spec.contrast))
            img = render_frame(rrng, grid, spec, stage, mask, drawn)
            save_gray(fdir / f"{name}.png", img)
            mid = float(np.clip(x_true[grid.rows // 2], 0.0, piece.length_mm))
            half = np.array([piece.width_mm / 2])
            _json({"station": spec.name, "line": spec.line, "piece": pid, "side": spec.side,
                   "image": f"{name}.png", "x0_obs_mm": round(k * grid.frame_mm, 3),
                   "y0_cam_mm": round(grid.y0_mm + j * grid.cam_mm, 3),
                   "mm_per_px_x": grid.mm_per_px_x, "mm_per_px_y": grid.mm_per_px_y,
                   "rows": grid.rows, "cols": grid.rows, "camera": j,
                   "os_edge_mm": round(float(enc.y_cam(np.array([mid]), half)[0]), 1),
                   "ds_edge_mm": round(float(enc.y_cam(np.array([mid]), -half)[0]), 1),
                   "time": iso_time(run.route.start_s[pid] + mid / SPEED_MM_S[spec.line])},
                  fdir / f"{name}.json")
            n_img += 1
    return n_img, pd.DataFrame(box_rows, columns=["station", "obs_key", "frame", "r0", "c0",
                                                  "r1", "c1"])


def _write_table(run: PlantRun, srun: StationRun, sdir: Path,
                 crops: CropLibrary | None) -> int:
    spec = srun.spec
    si = run.params.stations.index(spec)
    seen = srun.sightings[srun.sightings["seen"]].assign(_line=spec.line)
    stage = STAGE_OF_LINE[spec.line]
    roi_files: list[str] = [""] * len(seen)
    roi_mmx: list[float] = [float("nan")] * len(seen)
    roi_mmy: list[float] = [float("nan")] * len(seen)
    if crops is not None:
        (sdir / "roi").mkdir()
        roi_files, roi_mmx, roi_mmy = [], [], []
    for _, row in seen.iterrows() if crops is not None else ():
        rrng = np.random.default_rng([run.seed, 5000 + si, int(row["obs_no"])])
        y_sign = srun.encoders[row["piece"]].y_sign
        pic, gain = _picture(run, crops, row, rrng, 64, 64, y_sign)
        img, mmx, mmy = render_roi(rrng, spec, stage, pic, row["length_obs_mm"],
                                   row["width_obs_mm"], gain * spec.contrast)
        name = f"roi/{int(row['obs_no']):07d}.png"
        save_gray(sdir / name, img)
        roi_files.append(name)
        roi_mmx.append(round(mmx, 4))
        roi_mmy.append(round(mmy, 4))
    times = iso_times(seen["time_s"].to_numpy())
    if spec.export == "csv_table":
        table = pd.DataFrame({
            "DefectNo": seen["obs_no"].to_numpy(), "CoilId": seen["piece"].to_numpy(),
            "Surface": spec.side.upper(), "MdPos_mm": seen["x_obs_mm"].to_numpy(),
            "CdPos_mm": seen["y_obs_mm"].to_numpy(), "Length_mm": seen["length_obs_mm"].to_numpy(),
            "Width_mm": seen["width_obs_mm"].to_numpy(), "Class": seen["vendor_class"].to_numpy(),
            "Confidence": seen["confidence"].to_numpy(), "RoiFile": roi_files,
            "RoiMmPerPxMd": roi_mmx, "RoiMmPerPxCd": roi_mmy, "Timestamp": times,
        })
        table.to_csv(sdir / "defects.csv", index=False, lineterminator="\n", sep=";")
    else:
        _write_inspex(sdir / "inspex.sqlite", srun, seen, roi_files, roi_mmx, roi_mmy, times)
    return sum(1 for f in roi_files if f)


def _write_inspex(path: Path, srun: StationRun, seen: pd.DataFrame, roi_files: list[str],
                  roi_mmx: list[float], roi_mmy: list[float], times: list[str]) -> None:
    tmp = path.with_suffix(".tmp")
    if tmp.exists():
        tmp.unlink()
    con = sqlite3.connect(tmp)
    try:
        con.executescript("""
            CREATE TABLE classes (code INTEGER PRIMARY KEY, name TEXT NOT NULL);
            CREATE TABLE coils (coil TEXT PRIMARY KEY, first_ts TEXT, last_ts TEXT,
                                length_m REAL);
            CREATE TABLE defects (id INTEGER PRIMARY KEY, coil TEXT NOT NULL, side TEXT NOT NULL,
                                  pos_md_m REAL NOT NULL, pos_cd_mm REAL NOT NULL, len_mm REAL,
                                  wid_mm REAL, class_code INTEGER, confidence REAL, image TEXT,
                                  img_mm_px_md REAL, img_mm_px_cd REAL, ts TEXT);
        """)
        con.executemany("INSERT INTO classes VALUES (?, ?)",
                        sorted((c, n) for n, c in INSPEX_CODES.items()))
        for pid in srun.pieces:
            m = srun.marks[srun.marks["piece"] == pid]
            con.execute("INSERT INTO coils VALUES (?, ?, ?, ?)",
                        (pid, iso_time(float(m["time_s"].min())), iso_time(float(m["time_s"].max())),
                         round(float(m["x_obs_mm"].max() - m["x_obs_mm"].min()) / 1000.0, 3)))
        side = "T" if srun.spec.side == "top" else "B"
        rows = [
            (int(no), pid, side, round(float(x) / 1000.0, 4), float(y), float(ln), float(wd),
             INSPEX_CODES[str(cls)], float(cf), f or None,
             None if np.isnan(mx) else mx, None if np.isnan(my) else my, ts)
            for no, pid, x, y, ln, wd, cls, cf, f, mx, my, ts in zip(
                seen["obs_no"], seen["piece"], seen["x_obs_mm"], seen["y_obs_mm"],
                seen["length_obs_mm"], seen["width_obs_mm"], seen["vendor_class"],
                seen["confidence"], roi_files, roi_mmx, roi_mmy, times, strict=True)
        ]
        con.executemany("INSERT INTO defects VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        con.commit()
    finally:
        con.close()
    os.replace(tmp, path)
