"""What a frame station's models train on, taken from a simulated plant's ground truth.

On a real line the engineer trains a station's anomaly scorer on frames reviewed as clean and
its classifier on defect crops an inspector labelled. In a simulated plant the ground truth
(``truth/frame_boxes.csv``, ``truth/observations.csv``) plays the inspector:

- the *normal frames* are the exported frames on which it draws nothing at all (no real
  defect, no pseudo-defect);
- the *labelled crops* are its boxes cut out of the frames with the detector's margin, in a
  folder per class (the six plant classes, and ``pseudo`` for dirt, oil and water), the layout
  ``coilmap detect train-classifier`` reads.

Simulate a plant of another seed than the one measured, so that nothing trained on is scored
later.

>>> boxes = pd.DataFrame({"station": ["S", "S", "T"], "frame": ["a.png", "b.png", "c.png"]})
>>> defect_free_frames(["a.png", "b.png", "c.png", "d.png"], boxes, "S")
['c.png', 'd.png']
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from coilmap.errors import InputError
from detection.images import crop_box
from plant.truth import read_truth, reviewed_label


def defect_free_frames(frame_names: Iterable[str], boxes: pd.DataFrame, station: str) -> list[str]:
    """The names among ``frame_names`` on which ``boxes`` draws nothing at ``station``."""
    drawn = set(boxes.loc[boxes["station"] == station, "frame"])
    return sorted(n for n in frame_names if n not in drawn)


def frame_stations(plant_dir: Path) -> list[str]:
    """The plant's stations that export frames, in the plant's order."""
    meta = Path(plant_dir) / "plant.json"
    if not meta.is_file():
        raise InputError("not a simulated plant folder (no plant.json)", source=str(plant_dir))
    out = []
    for code in json.loads(meta.read_text(encoding="utf-8")).get("stations", []):
        sjson = Path(plant_dir) / "stations" / code / "station.json"
        if sjson.is_file() and json.loads(sjson.read_text(encoding="utf-8")).get("export") == "frames":
            out.append(code)
    return out


def copy_normal_frames(
    plant_dir: Path, out_dir: Path, stations: Sequence[str] = ()
) -> dict[str, int]:
    """Copy the defect-free frames of ``stations`` (default: every frame station) into
    ``out_dir`` as ``<station>__<frame>.png``; returns how many per station. The plant folder
    is only read."""
    plant_dir = Path(plant_dir)
    boxes = read_truth(plant_dir).frame_boxes
    chosen = _frame_stations_chosen(plant_dir, stations)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for code in chosen:
        fdir = plant_dir / "stations" / code / "frames"
        names = [p.name for p in fdir.glob("*.png")] if fdir.is_dir() else []
        free = defect_free_frames(names, boxes, code)
        for name in free:
            shutil.copyfile(fdir / name, out_dir / f"{code}__{name}")
        counts[code] = len(free)
    if not sum(counts.values()):
        raise InputError("the plant exported no defect-free frame (simulate it with images and "
                         "a larger blank_frame_ratio)", source=str(plant_dir))
    return counts


def crop_labels(boxes: pd.DataFrame, observations: pd.DataFrame) -> pd.DataFrame:
    """``boxes`` with the class of each (:func:`plant.truth.reviewed_label`): the true plant
    class of a real defect, ``pseudo`` of a pseudo-defect; a box of no recorded sighting is
    left out."""
    info = observations[observations["obs_key"].fillna("") != ""].set_index("obs_key")
    kind = info["kind"].reindex(boxes["obs_key"])
    true = info["true_class"].reindex(boxes["obs_key"])
    known = kind.notna().to_numpy()
    out = boxes[known].copy()
    out["label"] = [reviewed_label(k, t) for k, t in zip(kind[known], true[known], strict=True)]
    return out


def copy_labelled_crops(
    plant_dir: Path, out_dir: Path, stations: Sequence[str] = (), *, margin_px: int = 8,
    min_side_px: int = 4,
) -> dict[str, int]:
    """Cut every box the truth draws in the frames of ``stations`` (default: every frame
    station) with ``margin_px`` around it into ``out_dir/<class>/<station>__<frame>__<n>.png``
    (a box thinner than ``min_side_px`` before the margin is left out: a sliver at a frame's
    edge). Returns how many crops per class."""
    plant_dir = Path(plant_dir)
    truth = read_truth(plant_dir)
    chosen = _frame_stations_chosen(plant_dir, stations)
    boxes = crop_labels(truth.frame_boxes, truth.observations)
    boxes = boxes[boxes["station"].isin(chosen)]
    boxes = boxes[((boxes["r1"] - boxes["r0"]) >= min_side_px) & ((boxes["c1"] - boxes["c0"]) >= min_side_px)]
    counts: dict[str, int] = {}
    for (station, frame), group in boxes.groupby(["station", "frame"], sort=True):
        path = plant_dir / "stations" / str(station) / "frames" / str(frame)
        if not path.is_file():
            continue
        img = np.asarray(Image.open(path))
        for n, row in enumerate(group.itertuples(index=False)):
            r0, c0, r1, c1 = crop_box(img.shape[:2], (row.r0, row.c0, row.r1, row.c1), margin_px)
            cdir = Path(out_dir) / str(row.label)
            cdir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(img[r0:r1, c0:c1])).save(
                cdir / f"{station}__{Path(str(frame)).stem}__{n}.png")
            counts[str(row.label)] = counts.get(str(row.label), 0) + 1
    if not counts:
        raise InputError("the plant's frames show no defect to cut out (simulate it with "
                         "images)", source=str(plant_dir))
    return dict(sorted(counts.items()))


def _frame_stations_chosen(plant_dir: Path, stations: Sequence[str]) -> list[str]:
    known = frame_stations(plant_dir)
    chosen = list(stations) or known
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise InputError(f"no frame station {unknown} in the plant (frame stations: {known})",
                         source=str(plant_dir))
    return chosen
