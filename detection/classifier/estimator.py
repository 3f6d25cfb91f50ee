"""The supervised defect classifier: a scikit-learn-style estimator around :class:`CompactResNet`.

``fit`` trains from scratch with class weights, label smoothing, AdamW and a one-cycle
learning rate, and strong augmentation: random crops, the 8 symmetries of the square,
brightness/contrast, and guided crop-and-paste (real defect boxes pasted into clean
backgrounds, classes drawn by their validation loss). The epoch with the best validation
result is kept. ``predict_proba`` / ``embed`` / ``features`` take grayscale float images in
[0, 1] of any size and resize them internally, so detection workers can pass crops cut out of
strip frames directly.

>>> rng = np.random.default_rng(0)
>>> imgs = [rng.random((24, 24)).astype(np.float32) * (0.3 if i % 2 else 1.0) for i in range(8)]
>>> clf = DefectClassifier(input_px=32, widths=(4, 8), blocks_per_stage=1, epochs=1, batch_size=4)
>>> clf = clf.fit(imgs, [i % 2 for i in range(8)], classes=["bright", "dark"])
>>> clf.predict_proba(imgs[:3]).shape, clf.embed([np.zeros((50, 70))]).shape
((3, 2), (1, 8))
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coilmap.errors import InputError
from detection.augment import (
    Cutout,
    brightness_contrast,
    class_probabilities,
    clean_background,
    cut_boxes,
    flip_rot90,
    paste,
    random_crop_box,
)
from detection.classifier.artefact import config_fits, load_model, save_model
from detection.classifier.torch_model import CompactResNet
from detection.weight_ema import WeightEma

Box = tuple[int, int, int, int]


def resize01(image: np.ndarray, size_px: int) -> torch.Tensor:
    """A (H, W) image as a (size_px, size_px) float tensor (bilinear, antialiased)."""
    t = torch.as_tensor(np.ascontiguousarray(image, dtype=np.float32))
    if t.ndim != 2 or t.shape[0] < 2 or t.shape[1] < 2:
        raise InputError(f"expected a 2-D grayscale image of at least 2x2 px, got {tuple(t.shape)}")
    return F.interpolate(
        t[None, None], size=(size_px, size_px), mode="bilinear", antialias=True, align_corners=False
    )[0, 0]


def _symmetries(x: torch.Tensor, k: int) -> torch.Tensor:
    """The same 8 symmetries as :func:`detection.augment.flip_rot90`, on (N, 1, H, W) tensors."""
    out = torch.rot90(x, k % 4, dims=(2, 3))
    return out.flip(3) if k % 8 >= 4 else out


class DefectClassifier:
    """Image-level defect class from a grayscale image of any size.

    Parameters are stored as given (scikit-learn contract); learned state ends in ``_``:
    ``classes_``, ``net_``, ``mean_``, ``std_``, ``history_``, ``best_epoch_``.
    ``tta`` is the number of square symmetries averaged at prediction (1, 2, 4 or 8); ``fit``
    with validation images replaces it by the count that does best on them.
    """

    def __init__(
        self,
        input_px: int = 160,
        widths: tuple[int, ...] = (32, 64, 128, 192),
        blocks_per_stage: int = 1,
        epochs: int = 30,
        batch_size: int = 16,
        lr: float = 3e-3,
        weight_decay: float = 5e-4,
        label_smoothing: float = 0.1,
        min_crop_scale: float = 0.6,
        paste_fraction: float = 0.1,
        paste_every: int = 5,
        tta: int = 8,
        seed: int = 0,
        threads: int = 1,
        max_minutes: float | None = None,
        ema_decay: float | None = None,
        precise_bn_images: int = 0,
    ) -> None:
        self.input_px = input_px
        self.widths = widths
        self.blocks_per_stage = blocks_per_stage
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.label_smoothing = label_smoothing
        self.min_crop_scale = min_crop_scale
        self.paste_fraction = paste_fraction
        self.paste_every = paste_every
        self.tta = tta
        self.seed = seed
        self.threads = threads
        self.max_minutes = max_minutes
        self.ema_decay = ema_decay
        self.precise_bn_images = precise_bn_images

    # ----------------------------------------------------------------------------- training
    def fit(
        self,
        images: Sequence[np.ndarray],
        labels: Sequence[int],
        *,
        classes: Sequence[str],
        val_images: Sequence[np.ndarray] | None = None,
        val_labels: Sequence[int] | None = None,
        boxes: Sequence[tuple[Box, ...]] | None = None,
        background_boxes: Sequence[tuple[Box, ...]] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> DefectClassifier:
        """Train on ``images`` (float (H, W) in [0, 1]) with integer ``labels`` into ``classes``.

        ``boxes[i]`` are the defect regions of image i of its own class (cut out for
        crop-and-paste); ``background_boxes[i]`` every annotated region of it (what a clean
        background must avoid). Without boxes there is no crop-and-paste.
        """
        torch.set_num_threads(self.threads)
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        y = np.asarray(labels, dtype=np.int64)
        n_classes = len(classes)
        if len(images) != len(y) or len(y) == 0:
            raise InputError(f"{len(images)} images but {len(y)} labels")
        if y.min() < 0 or y.max() >= n_classes:
            raise InputError(f"labels must lie in 0..{n_classes - 1}")
        self.classes_ = list(classes)
        pix = np.concatenate([np.asarray(im, dtype=np.float32).ravel()[::7] for im in images])
        self.mean_, self.std_ = float(pix.mean()), float(max(pix.std(), 1e-3))

        counts = np.bincount(y, minlength=n_classes).astype(np.float64)
        weights = counts.sum() / np.maximum(counts, 1.0) / n_classes
        weights[counts == 0] = 0.0
        class_weight = torch.tensor(weights, dtype=torch.float32)

        cutouts, backgrounds = self._paste_material(images, y, boxes, background_boxes)
        paste_p = class_probabilities(np.ones(n_classes))

        net = CompactResNet(n_classes, tuple(self.widths), self.blocks_per_stage)
        self.net_ = net
        steps = max(1, math.ceil(len(y) / self.batch_size))
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.lr, total_steps=self.epochs * steps, pct_start=0.2
        )
        # validated, kept and returned: the weights' moving average where asked (detection/weight_ema.py)
        ema = WeightEma(net, decay=self.ema_decay) if self.ema_decay else None
        bn_rng = np.random.default_rng([self.seed, 1])  # its own stream: training's draws stay as they were
        has_val = val_images is not None and val_labels is not None and len(val_labels) > 0
        self.history_: list[dict[str, Any]] = []
        best_key: tuple[float, float] | None = None
        best_state = copy.deepcopy(net.state_dict())
        self.best_epoch_ = self.epochs
        self.stopped_at_epoch_: int | None = None
        t_start = time.perf_counter()
        for epoch in range(1, self.epochs + 1):
            t0 = time.perf_counter()
            net.train()
            order = rng.permutation(len(y))
            total = 0.0
            for s in range(steps):
                idx = order[s * self.batch_size : (s + 1) * self.batch_size]
                if len(idx) < 2:
                    continue  # BatchNorm needs two samples
                xb, yb = self._batch(images, y, idx, cutouts, backgrounds, paste_p, rng)
                loss = F.cross_entropy(net(xb), yb, weight=class_weight, label_smoothing=self.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if ema is not None:
                    ema.update(net)
                total += loss.item() * len(idx)
            row: dict[str, Any] = {"epoch": epoch, "train_loss": total / len(y)}
            if self.precise_bn_images:
                self._precise_batch_norm(net, images, y, cutouts, backgrounds, paste_p, bn_rng)
            if has_val:
                with ema.applied(net) if ema is not None else nullcontext():
                    proba = self._proba_tensor(val_images, tta=1)  # type: ignore[arg-type]
                vy = torch.as_tensor(np.asarray(val_labels, dtype=np.int64))
                per = F.nll_loss(torch.log(proba.clamp_min(1e-8)), vy, reduction="none")
                per_class = [
                    float(per[vy == c].mean()) if bool((vy == c).any()) else 0.0 for c in range(n_classes)
                ]
                acc = float((proba.argmax(1) == vy).float().mean())
                row.update(val_loss=float(per.mean()), val_acc=acc, val_loss_per_class=per_class)
                if cutouts and epoch % self.paste_every == 0:
                    paste_p = class_probabilities(per_class)  # guided: hardest classes first
                key = (acc, -float(per.mean()))
                if best_key is None or key >= best_key:
                    best_key, self.best_epoch_ = key, epoch
                    best_state = ema.state_dict() if ema is not None else copy.deepcopy(net.state_dict())
            row["seconds"] = time.perf_counter() - t0
            self.history_.append(row)
            if log is not None:
                log(_format_row(row))
            if self._out_of_time(t_start, epoch):
                self.stopped_at_epoch_ = epoch
                if log is not None:
                    log(f"stopped after epoch {epoch} of {self.epochs}: the next would pass "
                        f"--max-minutes {self.max_minutes}")
                break
        if has_val:
            net.load_state_dict(best_state)
            self.tta = self._choose_tta(val_images, val_labels)  # type: ignore[arg-type]
        elif ema is not None:
            net.load_state_dict(ema.state_dict())
        net.eval()
        return self

    @torch.no_grad()
    def _precise_batch_norm(self, net: nn.Module, images: Sequence[np.ndarray], y: np.ndarray,
                            cutouts: dict[int, list[list[Cutout]]], backgrounds: list[np.ndarray],
                            paste_p: np.ndarray, rng: np.random.Generator) -> None:
        """Every BatchNorm's running statistics recomputed as plain averages over
        ``precise_bn_images`` augmented training images (precise BN, Wu and Johnson 2021).

        Why: with batches of 16 and momentum 0.1 the running statistics are those of the last
        few dozen batches, and neighbouring epochs of the NEU recipe validated 6 points apart.
        On NEU it made the epochs steadier and the model no better (docs/detection-classification.md,
        "Steadier single runs?"): most of the jumps are in the weights.
        """
        norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches below
        net.train()
        pick = rng.permutation(len(y))[: self.precise_bn_images]
        with torch.random.fork_rng(devices=[]):  # the head's dropout draws: training's stay as they were
            for start in range(0, len(pick), 64):
                idx = pick[start : start + 64]
                if len(idx) >= 2:
                    net(self._batch(images, y, idx, cutouts, backgrounds, paste_p, rng)[0])
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum

    def _out_of_time(self, t_start: float, epochs_done: int) -> bool:
        """Whether one more epoch (at the mean pace so far) would pass ``max_minutes``."""
        if self.max_minutes is None or epochs_done >= self.epochs:
            return False
        elapsed = time.perf_counter() - t_start
        return elapsed * (epochs_done + 1) / epochs_done > self.max_minutes * 60

    def _choose_tta(self, images: Sequence[np.ndarray], labels: Sequence[int]) -> int:
        """The number of averaged symmetries (1, 2, 4, 8) with the fewest validation errors
        (then the lowest validation loss); fewer views win ties, they are cheaper."""
        y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        best: tuple[int, float, int] | None = None
        for k in (1, 2, 4, 8):
            proba = self._proba_tensor(images, tta=k)
            errors = int((proba.argmax(1) != y).sum())
            loss = float(F.nll_loss(torch.log(proba.clamp_min(1e-8)), y))
            if best is None or (errors, loss) < best[:2]:
                best = (errors, loss, k)
        assert best is not None
        return best[2]

    def _paste_material(
        self,
        images: Sequence[np.ndarray],
        y: np.ndarray,
        boxes: Sequence[tuple[Box, ...]] | None,
        background_boxes: Sequence[tuple[Box, ...]] | None,
    ) -> tuple[dict[int, list[list[Cutout]]], list[np.ndarray]]:
        """Cutouts per class (grouped by source image) and clean backgrounds, for crop-and-paste."""
        if boxes is None or self.paste_fraction <= 0:
            return {}, []
        bg_boxes = background_boxes if background_boxes is not None else boxes
        cutouts: dict[int, list[list[Cutout]]] = {}
        backgrounds = []
        for im, label, bx, bg in zip(images, y, boxes, bg_boxes, strict=True):
            cs = cut_boxes(im, bx, int(label))
            # A box covering most of the image is a texture class (crazing), not a pasteable blob.
            cs = [c for c in cs if c.pixels.size < 0.6 * im.size]
            if cs:
                cutouts.setdefault(int(label), []).append(cs)
            if bg:
                clean = clean_background(im, bg)
                if clean is not None:
                    backgrounds.append(clean)
        if not backgrounds:
            return {}, []
        return cutouts, backgrounds

    def _batch(
        self,
        images: Sequence[np.ndarray],
        y: np.ndarray,
        idx: np.ndarray,
        cutouts: dict[int, list[list[Cutout]]],
        backgrounds: list[np.ndarray],
        paste_p: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for i in idx:
            label = int(y[i])
            img = np.asarray(images[i], dtype=np.float32)
            pasted = False
            if cutouts and rng.random() < self.paste_fraction:
                # Guided choice: a class by its validation loss, among those with cutouts.
                have = np.array([c in cutouts for c in range(len(paste_p))], dtype=float)
                p = paste_p * have
                if p.sum() > 0:
                    label = int(rng.choice(len(p), p=p / p.sum()))
                    source = cutouts[label][int(rng.integers(len(cutouts[label])))]
                    pick = [source[j] for j in rng.permutation(len(source))[: rng.integers(1, 4)]]
                    bg = backgrounds[int(rng.integers(len(backgrounds)))]
                    img, _ = paste(bg, pick, rng)
                    pasted = True
            if not pasted:
                y0, x0, h, w = random_crop_box(img.shape, rng, self.min_crop_scale)
                img = img[y0 : y0 + h, x0 : x0 + w]
            img = brightness_contrast(flip_rot90(img, int(rng.integers(8))), rng)
            xs.append(resize01(img, self.input_px))
            ys.append(label)
        x = (torch.stack(xs)[:, None] - self.mean_) / self.std_
        return x, torch.tensor(ys, dtype=torch.int64)

    # ----------------------------------------------------------------------------- inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise InputError("the classifier is not trained (call fit or load a model file)")

    def _tensor(self, images01: Sequence[np.ndarray] | np.ndarray) -> torch.Tensor:
        if isinstance(images01, np.ndarray) and images01.ndim == 2:
            images01 = [images01]
        if len(images01) == 0:
            return torch.zeros(0, 1, self.input_px, self.input_px)
        x = torch.stack([resize01(im, self.input_px) for im in images01])[:, None]
        return (x - self.mean_) / self.std_

    @torch.no_grad()
    def _proba_tensor(self, images01: Sequence[np.ndarray], tta: int | None = None) -> torch.Tensor:
        self._check_fitted()
        k = self.tta if tta is None else tta
        self.net_.eval()
        x = self._tensor(images01)
        out = []
        for s in range(0, len(x), 64):
            xb = x[s : s + 64]
            views = _tta_views(k)
            out.append(torch.stack([F.softmax(self.net_(_symmetries(xb, v)), 1) for v in views]).mean(0))
        return torch.cat(out) if out else torch.zeros(0, len(self.classes_))

    def predict_proba(
        self, images01: Sequence[np.ndarray] | np.ndarray, tta: int | None = None
    ) -> np.ndarray:
        """Class probabilities (N, n_classes), columns in ``classes_`` order; ``tta`` views
        averaged (default: the count chosen on validation, ``self.tta``; 1 is the cheapest)."""
        return self._proba_tensor(images01, tta=tta).numpy()

    def predict(self, images01: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """The most probable class name of each image."""
        return np.array(self.classes_, dtype=object)[self.predict_proba(images01).argmax(1)]

    @property
    def embedding_dim(self) -> int:
        """The width of :meth:`embed`'s features."""
        self._check_fitted()
        return int(self.net_.embedding_dim)

    @torch.no_grad()
    def embed(self, images01: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Penultimate-layer features (N, embedding_dim), for similar-image search."""
        self._check_fitted()
        self.net_.eval()
        x = self._tensor(images01)
        return (
            torch.cat([self.net_.embed(x[s : s + 64]) for s in range(0, len(x), 64)]).numpy()
            if len(x)
            else np.zeros((0, self.net_.embedding_dim), np.float32)
        )

    @torch.no_grad()
    def features(self, images01: Sequence[np.ndarray] | np.ndarray) -> list[torch.Tensor]:
        """The network's stage outputs (shallow to deep) for the resized, normalised images."""
        self._check_fitted()
        self.net_.eval()
        return self.net_.features(self._tensor(images01))

    # ----------------------------------------------------------------------------- files
    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters as set (scikit-learn contract: learned state ends in ``_``)."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def config(self) -> dict[str, Any]:
        """Everything :meth:`load` needs to rebuild the estimator (params + learned scalars)."""
        self._check_fitted()
        return {
            "architecture": "CompactResNet",
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.get_params().items()},
            "classes": list(self.classes_),
            "input_px": self.input_px,
            "normalisation": {"mean": self.mean_, "std": self.std_},
            "best_epoch": self.best_epoch_,
        }

    def save(self, path: str | Path, manifest: dict[str, Any]) -> Path:
        """Write the model file and its JSON manifest; returns the manifest path."""
        return save_model(
            path,
            kind="classifier",
            config=self.config(),
            state_dict=self.net_.state_dict(),
            manifest=manifest,
        )

    @classmethod
    def load(cls, path: str | Path) -> DefectClassifier:
        """A trained classifier from a model file (clear error for any other file)."""
        with config_fits(path):
            return cls._from_file(path)

    @classmethod
    def _from_file(cls, path: str | Path):  # type: ignore[no-untyped-def]
        config, state = load_model(path, kind="classifier")
        if config.get("architecture") == "ClassifierEnsemble":
            from detection.classifier.ensemble import ClassifierEnsemble

            return ClassifierEnsemble.from_config(config, state, path)
        return DefectClassifier.from_config(config, state, path)

    @classmethod
    def from_config(cls, config: dict[str, Any], state: dict[str, torch.Tensor],
                    path: str | Path):  # type: ignore[no-untyped-def]
        """The classifier a file's config and weights describe (``path`` names it in errors)."""
        params = dict(config["params"])
        params["widths"] = tuple(params["widths"])
        clf = cls(**params)
        clf.classes_ = list(config["classes"])
        clf.mean_ = float(config["normalisation"]["mean"])
        clf.std_ = float(config["normalisation"]["std"])
        clf.best_epoch_ = config.get("best_epoch")
        clf.history_ = []
        net = CompactResNet(len(clf.classes_), clf.widths, clf.blocks_per_stage)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise InputError(
                "the model file's weights do not fit its architecture", source=str(path)
            ) from exc
        clf.net_ = net.eval()
        return clf


def _tta_views(k: int) -> list[int]:
    """Which symmetries to average: 1 identity, 2 +h-flip, 4 +v-flip/rot180, 8 all."""
    return {1: [0], 2: [0, 4], 4: [0, 2, 4, 6]}.get(k, list(range(8)))


def _format_row(row: dict[str, Any]) -> str:
    parts = [f"epoch {row['epoch']:3d}", f"train_loss {row['train_loss']:.4f}"]
    if "val_loss" in row:
        parts += [f"val_loss {row['val_loss']:.4f}", f"val_acc {row['val_acc']:.4f}"]
    parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
