"""Shared helpers of the ingestion tests: a small simulated plant, a real tiny detector, a
configuration, database checks."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy import Engine, func, select
from torch.nn import functional as F

from coilmap import models as m
from detection.anomaly.base import AnomalyScorer, check_images, resize_batch
from detection.classifier.estimator import DefectClassifier
from detection.images import load_gray
from detection.tiling import make_grid, tile
from detection.worker import TileDetector
from ingestion.config import PlantConfig, config_from_plant


class BackgroundScorer(AnomalyScorer):
    """A real, tiny anomaly scorer: how far each pixel lies from its local background (a
    box blur), in units of the noise of normal tiles, smoothed. Fits in milliseconds, so the
    tests run the whole frame path with a fitted model."""

    kind = "background"

    def __init__(
        self,
        *,
        input_size: int = 128,
        background_px: int = 9,
        blur_px: int = 5,
        pixel_quantile: float = 0.999,
    ) -> None:
        self.input_size = input_size
        self.background_px = background_px
        self.blur_px = blur_px
        self.pixel_quantile = pixel_quantile

    def _residual(self, batch: torch.Tensor) -> torch.Tensor:
        k = self.background_px
        return batch - F.avg_pool2d(batch, k, stride=1, padding=k // 2, count_include_pad=False)

    def _score_batch(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        z = self._residual(batch).abs() / self.noise_
        k = self.blur_px
        maps = F.avg_pool2d(z, k, stride=1, padding=k // 2, count_include_pad=False)[:, 0]
        return maps.numpy(), maps.flatten(1).max(1).values.numpy()

    def fit(self, X: Any, y: Any = None) -> BackgroundScorer:
        images = check_images(X)
        r = self._residual(resize_batch(images, self.input_size))
        self.noise_ = float((r - r.median()).abs().median()) * 1.4826 + 1e-6
        self._calibrate(images, image_quantile=0.99, pixel_quantile=self.pixel_quantile)
        return self


def tiny_detector(frames_dir: Path, n_images: int = 3) -> TileDetector:
    imgs = [load_gray(p) for p in sorted(frames_dir.glob("*.png"))[:n_images]]
    tiles = [t for im in imgs for t in tile(im, make_grid(im.shape, tile=256))]
    scorer = BackgroundScorer().fit(tiles)
    crops = [t[:48, :48] for t in tiles[:8]]
    clf = DefectClassifier(
        input_px=32, widths=(4, 8), blocks_per_stage=1, epochs=1, batch_size=4, tta=1, threads=1
    )
    clf.fit(crops, [i % 2 for i in range(len(crops))], classes=["scratches", "patches"])
    return TileDetector(scorer, clf, min_area_px=24)


def copy_plant(src: Path, dst: Path, *, stations: list[str], max_frames: int | None = None) -> Path:
    """A plant folder with only ``stations`` (and at most ``max_frames`` frames each)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("plant.json", "events.jsonl"):
        shutil.copy2(src / name, dst / name)
    for code in stations:
        sdir = src / "stations" / code
        shutil.copytree(sdir, dst / "stations" / code, ignore=shutil.ignore_patterns("frames"))
        if (sdir / "frames").is_dir():
            (dst / "stations" / code / "frames").mkdir()
            pngs = sorted((sdir / "frames").glob("*.png"))[:max_frames]
            for p in pngs:
                shutil.copy2(p, dst / "stations" / code / "frames" / p.name)
                shutil.copy2(
                    p.with_suffix(".json"), dst / "stations" / code / "frames" / p.with_suffix(".json").name
                )
    import json

    meta = json.loads((dst / "plant.json").read_text())
    meta["stations"] = stations
    (dst / "plant.json").write_text(json.dumps(meta))
    return dst


def plant_config(plant: Path, images: Path, **overrides: Any) -> PlantConfig:
    from dataclasses import replace

    cfg = config_from_plant(plant, image_root=images, interval_s=1.0)
    # No fusion unless a test asks for it (test_fusion_after_ingestion does).
    return replace(cfg, settle_s=0.0, sidecar_wait_s=0.0, **{"fused_model": None, **overrides})


def observation_keys(engine: Engine) -> list[str]:
    with engine.connect() as c:
        return sorted(c.scalars(select(m.Observation.source_key)))


def count(engine: Engine, model: Any) -> int:
    with engine.connect() as c:
        return int(c.scalar(select(func.count()).select_from(model)))
