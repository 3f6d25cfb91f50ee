"""The defect segmenter: a scikit-learn-style estimator around the context aggregation network.

Training follows the context-aggregation paper (section III-B/C):

- the loss is blended from classification to segmentation over the epochs,
  ``L = (1 - lam) * L_class + lam * L_seg`` with ``lam = (epoch - 1) / (epochs - 1)``: first
  the network learns *whether* an image holds a defect class (read from the mask maxima),
  then *where*;
- both terms are binary cross-entropies with positive class weights (``pos_weight``), derived
  from the training data's imbalance (images for the class term, pixels for the mask term);
- guided crop-and-paste: every epoch adds ``n_synthetic`` images made by pasting real defect
  blobs (cut out by their masks) into defect-free training images, the classes drawn with
  probabilities that follow each class's validation loss.

Images are grayscale float (H, W) in [0, 1] of any size; masks are int (H, W) with 0 for
background and ``k + 1`` for defect class ``k``. Predictions come back at each image's own size.

>>> rng = np.random.default_rng(0)
>>> imgs = [rng.random((40, 36)).astype(np.float32) for _ in range(6)]
>>> masks = [np.zeros((40, 36), np.int16) for _ in range(6)]
>>> for m in masks[:3]: m[10:20, 8:16] = 1
>>> seg = DefectSegmenter(crop_px=16, width=8, dilations=(1, 2), epochs=1, batch_size=3)
>>> seg = seg.fit(imgs, masks, classes=["dent"], n_synthetic=0)
>>> seg.predict_masks(imgs[:2])[0].shape, seg.predict_proba(imgs[:2]).shape
((1, 40, 36), (2, 1))
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from coilmap.errors import InputError
from detection import mixed_precision
from detection.augment import (
    Cutout,
    brightness_contrast,
    class_probabilities,
    cut_mask_blobs,
    paste,
)
from detection.classifier.artefact import config_fits, load_model, save_model
from detection.segmentation.edges import N_EDGE_PLANES, edge_planes
from detection.segmentation.torch_model import ContextAggregationNetwork


class DefectSegmenter:
    """Per-class defect masks and image-level class scores (the masks' maxima).

    Learned state: ``classes_`` (defect classes; background is implicit), ``net_``, ``mean_``,
    ``std_``, ``pos_weight_class_``, ``pos_weight_seg_``, ``history_``, ``best_epoch_``, and
    the thresholds chosen on the validation images, ``image_thresholds_`` (one per class: a
    class is present when its mask maximum reaches its threshold; set so that about
    ``free_alarm_rate`` of the defect-free validation images reach any, see
    :func:`~detection.segmentation.metrics.per_class_thresholds`) and ``pixel_threshold_``
    (a pixel is defect).
    """

    def __init__(
        self,
        scale: float = 1.0,
        crop_px: int = 128,
        width: int = 24,
        dilations: tuple[int, ...] = (1, 2, 4, 8, 16),
        pool: int = 4,
        epochs: int = 120,
        batch_size: int = 16,
        lr: float = 4e-3,
        free_per_epoch: int = 200,
        hard_free: float = 0.0,
        max_pos_weight_class: float = 8.0,
        max_pos_weight_seg: float = 20.0,
        threshold: float = 0.5,
        free_alarm_rate: float = 0.05,
        val_every: int = 2,
        val_from: float = 0.0,
        blend_end: float = 1.0,
        seed: int = 0,
        threads: int = 1,
        max_minutes: float | None = None,
        precision: str = "fp32",
        edge_px: float = 0.0,
        gate_masks: bool = True,
        edge_paste: bool = False,
    ) -> None:
        self.scale = scale
        self.crop_px = crop_px
        self.width = width
        self.dilations = dilations
        self.pool = pool
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.free_per_epoch = free_per_epoch
        self.hard_free = hard_free
        self.max_pos_weight_class = max_pos_weight_class
        self.max_pos_weight_seg = max_pos_weight_seg
        self.threshold = threshold
        self.free_alarm_rate = free_alarm_rate
        self.val_every = val_every
        self.val_from = val_from
        self.blend_end = blend_end
        self.seed = seed
        self.threads = threads
        self.max_minutes = max_minutes
        self.precision = precision
        self.edge_px = edge_px
        self.gate_masks = gate_masks
        self.edge_paste = edge_paste

    # ----------------------------------------------------------------------------- training
    def fit(
        self,
        images: Sequence[np.ndarray],
        masks: Sequence[np.ndarray],
        *,
        classes: Sequence[str],
        val_images: Sequence[np.ndarray] | None = None,
        val_masks: Sequence[np.ndarray] | None = None,
        n_synthetic: int = 100,
        log: Callable[[str], None] | None = None,
    ) -> DefectSegmenter:
        """Train on images with int masks (0 background, k+1 class k); select on val.

        Training sees ``crop_px`` square crops of the images at ``scale`` (defect images are
        cropped around a defect pixel most of the time); prediction runs the fully
        convolutional network on whole images at the same scale. Small defects so keep their
        pixels, and a training step costs a crop, not a whole image.
        """
        if self.crop_px % self.pool:
            raise InputError(f"crop_px {self.crop_px} must be a multiple of pool {self.pool}")
        if len(images) != len(masks) or not images:
            raise InputError(f"{len(images)} images but {len(masks)} masks")
        torch.set_num_threads(self.threads)
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        n = len(classes)
        self.classes_ = list(classes)
        xs_all = [self._scaled(im) for im in images]
        ms_all = [self._scaled_mask(m) for m in masks]
        pix = np.concatenate([x.ravel()[::5] for x in xs_all])
        self.mean_, self.std_ = float(pix.mean()), float(max(pix.std(), 1e-3))

        # Positive weights from the imbalance (square root, capped): images and pixels.
        img_pos = np.array([self._labels(m) for m in ms_all])
        pos = np.maximum(img_pos.sum(0), 1.0)
        self.pos_weight_class_ = np.clip(
            np.sqrt((len(images) - pos) / pos), 1.0, self.max_pos_weight_class
        ).tolist()
        counts = np.array([[np.sum(m == k + 1) for k in range(n)] for m in ms_all], dtype=float)
        pix_pos = np.maximum(counts.sum(0), 1.0)
        pix_all = float(sum(m.size for m in ms_all))
        self.pos_weight_seg_ = np.clip(
            np.sqrt((pix_all - pix_pos) / pix_pos), 1.0, self.max_pos_weight_seg
        ).tolist()
        pw_c = torch.tensor(self.pos_weight_class_, dtype=torch.float32)
        pw_s = torch.tensor(self.pos_weight_seg_, dtype=torch.float32)[None, :, None, None]

        free = [i for i, m in enumerate(ms_all) if not np.any(m)]
        free_slot = {i: k for k, i in enumerate(free)}
        free_logit = np.zeros(len(free))  # the last crop's largest logit of each defect-free image
        defect = [i for i, m in enumerate(ms_all) if np.any(m)]
        cutouts: dict[int, list[Cutout]] = {}
        for i in defect:
            for k in np.unique(ms_all[i]):
                if k > 0:
                    cutouts.setdefault(int(k) - 1, []).extend(
                        cut_mask_blobs(xs_all[i], ms_all[i] == k, int(k) - 1)
                    )
        synth_p = class_probabilities(np.ones(n))
        has_val = val_images is not None and val_masks is not None and len(val_images) > 0

        net = self._network(n)
        mixed_precision.prepare(net, self.precision)
        self.net_ = net
        self.image_thresholds_ = [self.threshold] * n
        self.pixel_threshold_ = self.threshold
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        self.history_: list[dict[str, Any]] = []
        best, best_state = None, copy.deepcopy(net.state_dict())
        self.best_epoch_ = self.epochs
        budget_s = None if self.max_minutes is None else self.max_minutes * 60
        t_start = time.perf_counter()
        last = False
        step = 0
        for epoch in range(1, self.epochs + 1):
            t0 = time.perf_counter()
            # Progress drives both the loss blend and the cosine learning rate: the epoch
            # fraction, or with a wall-time budget the time fraction if that is ahead, so a run
            # cut short by the budget still ends on the segmentation loss at a low rate.
            progress = (epoch - 1) / max(self.epochs - 1, 1)
            if budget_s is not None and epoch > 1:
                elapsed = t0 - t_start
                per_epoch = elapsed / (epoch - 1)
                progress = max(progress, min(1.0, elapsed / max(budget_s - per_epoch, 1e-6)))
                last = elapsed + 2 * per_epoch > budget_s  # the next one would not fit
            last = last or epoch == self.epochs
            lam = self.blend_end * progress  # the segmentation loss's share; the rest: classification
            for group in opt.param_groups:
                group["lr"] = self.lr * (0.02 + 0.49 * (1 + math.cos(math.pi * progress)))
            # This epoch's set: every defect image, a sample of free ones, synthetic pastes.
            pick_free = self._pick_free(free, free_logit, rng)
            pairs = [(xs_all[i], ms_all[i]) for i in defect + pick_free]
            origin = defect + pick_free  # the source image of each pair (synthetic ones: none)
            if cutouts and free and n_synthetic > 0:
                for _ in range(n_synthetic):
                    have = np.array([c in cutouts for c in range(n)], dtype=float) * synth_p
                    k = int(rng.choice(n, p=have / have.sum()))
                    src = cutouts[k]
                    pick = [src[int(j)] for j in rng.integers(0, len(src), size=rng.integers(1, 4))]
                    im, lab = paste(
                        xs_all[free[int(rng.integers(len(free)))]], pick, rng, at_edges=self.edge_paste
                    )
                    pairs.append((brightness_contrast(im, rng, 0.05, 0.1), lab))
            order = rng.permutation(len(pairs))
            net.train()
            total = 0.0
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                if len(idx) < 2:
                    continue
                crops = [self._crop(*pairs[i], rng) for i in idx]
                xb = torch.stack([torch.from_numpy(self._planes(c[0], c[2], c[3])) for c in crops])
                mb = torch.stack([torch.from_numpy(c[1].astype(np.int64)) for c in crops])
                xb, mb = _flip(xb, mb[:, None], rng)  # the edge planes turn with their image
                yb = self._target(mb[:, 0])
                lb = (yb.amax(dim=(2, 3)) > 0).float()
                loss, image_logit = self._loss(net, xb, yb, lb, lam, pw_c, pw_s, self.precision)
                if self.hard_free > 0:  # how strongly each defect-free image was called defective
                    for j, i in enumerate(idx):
                        if i < len(origin) and origin[i] in free_slot:
                            free_logit[free_slot[origin[i]]] = float(image_logit[j])
                step += 1
                mixed_precision.check_finite(loss, step=step, precision=self.precision)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            row: dict[str, Any] = {"epoch": epoch, "lam": lam, "train_loss": total / len(order)}
            # Validation costs about what two training epochs do; the best epoch comes late
            # (on the schedule's low learning rate), so a run may start validating at val_from.
            due = epoch % self.val_every == 0 and progress >= self.val_from
            if has_val and (due or last):
                net.eval()
                with mixed_precision.autocast(self.precision):  # validation in the training's precision
                    lows = [self._low_res_one(im).float() for im in val_images]  # type: ignore[union-attr]
                vm = [self._scaled_mask(m) for m in val_masks]  # type: ignore[union-attr]
                targets = [self._target(torch.from_numpy(m.astype(np.int64))[None])[0] for m in vm]
                per_class = _per_class_loss(lows, targets, lam, pw_c, pw_s)
                val_map, iou = _selection_figures(lows, targets, vm)
                row.update(val_mAP=val_map, val_iou=iou, val_loss_per_class=per_class)
                synth_p = class_probabilities(per_class)  # guided: hardest classes get most pastes
                if best is None or val_map + iou >= best:
                    best, self.best_epoch_ = val_map + iou, epoch
                    best_state = copy.deepcopy(net.state_dict())
            row["seconds"] = time.perf_counter() - t0
            self.history_.append(row)
            if log is not None:
                log(_format_row(row))
            if last:
                break
        # predicting in float32, channels-last (about 1.25 x faster on whole images)
        self.net_ = mixed_precision.prepare(net.eval(), "fp32", training=False)
        if has_val:
            net.load_state_dict(best_state)
            self._choose_thresholds(val_images, val_masks)  # type: ignore[arg-type]
        return self

    def _pick_free(self, free: list[int], free_logit: np.ndarray, rng: np.random.Generator) -> list[int]:
        """This epoch's defect-free images: ``free_per_epoch`` of them, a ``hard_free`` share
        drawn with weights ``exp(logit)`` of how strongly the network last called each one
        defective (hard negatives: the false alarms that cost the image-level AP), the rest
        uniformly from the others."""
        if not free:
            return []
        n = min(self.free_per_epoch, len(free))
        n_hard = int(round(self.hard_free * n))
        hard: list[int] = []
        if n_hard:
            w = np.exp(free_logit - free_logit.max())
            hard = rng.choice(len(free), size=n_hard, replace=False, p=w / w.sum()).tolist()
        taken = set(hard)
        rest = [k for k in rng.permutation(len(free)).tolist() if k not in taken][: n - n_hard]
        return [free[k] for k in hard + rest]

    def _scaled(self, image: np.ndarray) -> np.ndarray:
        a = np.asarray(image, dtype=np.float32)
        if a.ndim != 2 or min(a.shape) < 2:
            raise InputError(f"expected a 2-D grayscale image of at least 2x2 px, got {a.shape}")
        if self.scale == 1.0:
            return a
        size = (max(2, round(a.shape[0] * self.scale)), max(2, round(a.shape[1] * self.scale)))
        t = torch.from_numpy(np.ascontiguousarray(a))[None, None]
        return F.interpolate(t, size=size, mode="bilinear", antialias=True)[0, 0].numpy()

    def _scaled_mask(self, mask: np.ndarray) -> np.ndarray:
        m = np.asarray(mask, dtype=np.int16)
        if self.scale == 1.0:
            return m
        size = (max(2, round(m.shape[0] * self.scale)), max(2, round(m.shape[1] * self.scale)))
        t = torch.from_numpy(m.astype(np.float32))[None, None]
        return F.interpolate(t, size=size, mode="nearest")[0, 0].numpy().astype(np.int16)

    def _network(self, n_classes: int) -> ContextAggregationNetwork:
        planes = N_EDGE_PLANES if self.edge_px > 0 else 0
        return ContextAggregationNetwork(
            n_classes, self.width, tuple(self.dilations), self.pool, in_channels=1 + planes
        )

    def _planes(
        self, image: np.ndarray, window: tuple[int, int, int, int], image_hw: tuple[int, int]
    ) -> np.ndarray:
        """The network's input (C, h, w): the normalised grey ``image`` (the ``window``
        ``(y0, x0, h, w)`` of an image of shape ``image_hw``), and its edge-proximity planes
        when ``edge_px`` > 0 (:mod:`detection.segmentation.edges`)."""
        grey = ((np.asarray(image, dtype=np.float32) - self.mean_) / self.std_)[None]
        if self.edge_px <= 0:
            return np.ascontiguousarray(grey)
        return np.concatenate([grey, edge_planes(image_hw, window, self.edge_px)])

    def _crop(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int], tuple[int, int]]:
        """A ``crop_px`` square of (image, mask), around a defect pixel 80 % of the time; with
        the window ``(y0, x0, h, w)`` it covers in ``image`` (mirrored padding lies outside)
        and the image's shape."""
        c = self.crop_px
        h, w = image.shape
        image_hw = (h, w)
        ph, pw = max(0, c - h), max(0, c - w)
        top, left = ph // 2, pw // 2
        if ph or pw:  # small images are mirrored out to the crop size
            pad = ((top, ph - top), (left, pw - left))
            image, mask = np.pad(image, pad, mode="symmetric"), np.pad(mask, pad, mode="symmetric")
            h, w = image.shape
        ys, xs = np.nonzero(mask)
        if len(ys) and rng.random() < 0.8:
            j = int(rng.integers(len(ys)))
            cy = int(ys[j]) + int(rng.integers(-c // 3, c // 3 + 1))
            cx = int(xs[j]) + int(rng.integers(-c // 3, c // 3 + 1))
            y0 = int(np.clip(cy - c // 2, 0, h - c))
            x0 = int(np.clip(cx - c // 2, 0, w - c))
        else:
            y0, x0 = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        return (
            np.ascontiguousarray(image[y0 : y0 + c, x0 : x0 + c]),
            np.ascontiguousarray(mask[y0 : y0 + c, x0 : x0 + c]),
            (y0 - top, x0 - left, c, c),
            image_hw,
        )

    def _choose_thresholds(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> None:
        """The image-level and pixel thresholds that do best on the validation images.

        Positive weights make the sigmoid outputs lean towards "defect" (by design: recall), so
        0.5 is not the best cut; the validation part is where such choices are made.
        """
        from detection.segmentation.metrics import (
            IoUAccumulator,
            balanced_accuracy,
            per_class_thresholds,
        )

        grid = np.round(np.arange(0.3, 0.991, 0.05), 2)
        scores, probs = self.predict_all(images)
        true = np.array([int(np.max(m)) for m in masks])
        # Image cuts: one per class, at the level where free_alarm_rate of the defect-free
        # validation images reach any of them. The rule rests on the many defect-free images;
        # the defect classes have 2-3 validation images each, and rules that count them
        # (accuracy, balanced accuracy) swung from calling most defects clean to calling most
        # clean images Uneven between runs. One cut for all classes (the maximum's quantile)
        # let the class scored highest on clean images (Uneven) set it for every class, and
        # most Break images fell below it. Without defect-free validation images: one cut for
        # all, the best balanced accuracy over every cut between neighbouring maxima.
        top = scores.max(1)
        if np.any(true == 0):
            self.image_thresholds_ = [float(t) for t in per_class_thresholds(scores[true == 0],
                                                                               self.free_alarm_rate)]
        else:
            levels = np.unique(top)
            cuts = (levels[:-1] + levels[1:]) / 2 if len(levels) > 1 else levels
            accs = np.array([balanced_accuracy(true, np.where(top >= t, scores.argmax(1) + 1, 0))
                             for t in cuts])
            best = np.flatnonzero(accs == accs.max())
            self.image_thresholds_ = [float(cuts[best[len(best) // 2]])] * len(self.classes_)
        accumulators = [IoUAccumulator(len(self.classes_)) for _ in grid]
        for acc, t in zip(accumulators, grid, strict=True):
            for pred, m in zip(self.pixel_labels(scores, probs, float(t)), masks, strict=True):
                acc.add_labels(pred, m)
        names = ["background", *self.classes_]
        ious = [acc.result(names)["mIoU_defect"] for acc in accumulators]
        self.pixel_threshold_ = float(grid[int(np.nanargmax(ious))])

    def selection_criterion(
        self,
        images: Sequence[np.ndarray],
        masks: Sequence[np.ndarray],
        *,
        lows: list[torch.Tensor] | None = None,
    ) -> dict[str, float]:
        """The figures that choose the epoch in :meth:`fit`, for any trained model (ensembles
        too) on validation ``images`` and int ``masks``: image-level mAP, best cell IoU and
        their sum, ``criterion`` (computed in float32; ``lows``: the images'
        :meth:`low_res_logits`, if computed already)."""
        self._check_fitted()
        lows = self.low_res_logits(images) if lows is None else lows
        vm = [self._scaled_mask(m) for m in masks]
        targets = [self._target(torch.from_numpy(m.astype(np.int64))[None])[0] for m in vm]
        val_map, iou = _selection_figures(lows, targets, vm)
        return {"mAP": val_map, "cell_iou": iou, "criterion": val_map + iou}

    def _target(self, masks: torch.Tensor) -> torch.Tensor:
        """Per-class soft masks (N, n_classes, h/pool, w/pool): the fraction of defect pixels."""
        onehot = torch.stack([(masks == k + 1).float() for k in range(len(self.classes_))], dim=1)
        h, w = onehot.shape[-2:]
        onehot = onehot[..., : h - h % self.pool, : w - w % self.pool]
        return F.avg_pool2d(onehot, self.pool)

    def _labels(self, mask: np.ndarray) -> np.ndarray:
        present = set(np.unique(mask).tolist())
        return np.array([float(k + 1 in present) for k in range(len(self.classes_))], np.float32)

    @staticmethod
    def _loss(net, xb, yb, lb, lam, pw_c, pw_s, precision="fp32"):  # type: ignore[no-untyped-def]
        """The blended loss of a batch, and each crop's largest logit (detached)."""
        with mixed_precision.autocast(precision):
            lo = net.low_res_logits(mixed_precision.as_input(xb, net))
        lo = lo.float()
        l_class = F.binary_cross_entropy_with_logits(lo.amax(dim=(2, 3)), lb, pos_weight=pw_c)
        l_seg = F.binary_cross_entropy_with_logits(lo, yb, pos_weight=pw_s)
        return (1.0 - lam) * l_class + lam * l_seg, lo.detach().amax(dim=(1, 2, 3))

    # ----------------------------------------------------------------------------- inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise InputError("the segmenter is not trained (call fit or load a model file)")

    @torch.no_grad()
    def _low_res_one(self, image01: np.ndarray) -> torch.Tensor:
        """Low-resolution logits (n_classes, h, w) of one whole image at ``scale``.

        The image is mirrored out to a multiple of ``pool``; the cells of the padding are cut
        off again, so they never count in the mask maxima.
        """
        self._check_fitted()
        self.net_.eval()
        a = self._scaled(image01)
        h, w = a.shape
        ph, pw = (-h) % self.pool, (-w) % self.pool
        if ph or pw:
            a = np.pad(a, ((0, ph), (0, pw)), mode="symmetric")
        x = torch.from_numpy(self._planes(a, (0, 0, h + ph, w + pw), (h, w)))[None]
        lo = self.net_.low_res_logits(mixed_precision.as_input(x, self.net_))[0]
        return lo[:, : max(1, h // self.pool), : max(1, w // self.pool)]

    def predict_proba(self, images01: Sequence[np.ndarray]) -> np.ndarray:
        """Image-level probability of each defect class (N, n_classes): the mask maxima."""
        if len(images01) == 0:
            return np.zeros((0, len(self.classes_)), np.float32)
        lows = self.low_res_logits(images01)
        return torch.sigmoid(torch.stack([lo.amax(dim=(1, 2)) for lo in lows])).numpy()

    def predict(self, images01: Sequence[np.ndarray], free_label: str = "Free") -> np.ndarray:
        """The class of each image: the defect class furthest over its threshold, or
        ``free_label`` where none reaches its own (:func:`~detection.segmentation.metrics.decide`)."""
        return self.labels(self.predict_proba(images01), free_label)

    def labels(self, proba: np.ndarray, free_label: str = "Free") -> np.ndarray:
        """:meth:`predict` from image-level probabilities already computed (N, n_classes)."""
        names = np.array([free_label, *self.classes_], dtype=object)
        return names[self.calls(proba)]

    def calls(self, proba: np.ndarray) -> np.ndarray:
        """Each image's call from its class probabilities: 0 defect-free, ``k + 1`` class ``k``
        (the class furthest over its own threshold, in logits)."""
        from detection.segmentation.metrics import decide

        return decide(np.asarray(proba), self.image_thresholds_)

    def free_scores(self, proba: np.ndarray) -> np.ndarray:
        """How defect-free each image looks (higher: more), the defect-free class's AP score:
        how far every class stays below its own threshold, in logits."""
        from detection.segmentation.metrics import class_margins

        return -class_margins(np.asarray(proba), self.image_thresholds_).max(1)

    def confidences(self, proba: np.ndarray) -> np.ndarray:
        """The confidence of each call: the called class's probability, or for a defect-free
        call the sigmoid of how far the closest class stays below its threshold."""
        p = np.asarray(proba, dtype=np.float64)
        calls = self.calls(p)
        below = 1.0 / (1.0 + np.exp(-self.free_scores(p)))
        return np.array([below[i] if c == 0 else p[i, c - 1] for i, c in enumerate(calls)])

    def predict_masks(self, images01: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per-class defect probability maps, each (n_classes, H, W) at its image's size."""
        return [self._upsampled(self._low_res_one(im), np.shape(im)) for im in images01]

    def low_res_logits(self, images01: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """One pass of the network per image: its low-resolution mask logits (n_classes, h, w),
        from which :meth:`predict_all` and :meth:`selection_criterion` can both be read."""
        return [self._low_res_one(im) for im in images01]

    def predict_all(
        self, images01: Sequence[np.ndarray], *, lows: list[torch.Tensor] | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """``predict_proba`` and ``predict_masks`` from one pass of the network (``lows``: the
        images' :meth:`low_res_logits`, if computed already)."""
        lows = self.low_res_logits(images01) if lows is None else lows
        if not lows:
            return np.zeros((0, len(self.classes_)), np.float32), []
        proba = torch.sigmoid(torch.stack([lo.amax(dim=(1, 2)) for lo in lows])).numpy()
        return proba, [self._upsampled(lo, np.shape(im)) for lo, im in zip(lows, images01, strict=True)]

    def pixel_labels(
        self, proba: np.ndarray, maps: Sequence[np.ndarray], threshold: float | None = None
    ) -> list[np.ndarray]:
        """Each image's defect mask, int (H, W): 0 background, ``k + 1`` for class ``k``.

        With ``gate_masks`` (the default) only the class the image is called (:meth:`labels`)
        is drawn, where its probability reaches the pixel ``threshold`` (default
        ``pixel_threshold_``); an image called defect-free gets an empty mask. Without it, a
        pixel is the most probable class wherever any class reaches the threshold, so the
        false alarms of every class on every image are drawn too (on the magnetic tile test
        part the default's defect mIoU is 22.46 that way against 30.52 gated;
        docs/detection-classification.md).
        ``proba`` and ``maps`` are :meth:`predict_all`'s.
        """
        from detection.segmentation.metrics import most_probable_labels

        t = self.pixel_threshold_ if threshold is None else threshold
        calls = self.calls(proba) if len(maps) else []
        out = []
        for call, prob in zip(calls, maps, strict=True):
            if self.gate_masks:
                lab = np.zeros(prob.shape[1:], dtype=np.int16)
                if call > 0:
                    lab[prob[call - 1] >= t] = call
            else:
                lab = most_probable_labels(prob, t)
            out.append(lab)
        return out

    @staticmethod
    def _upsampled(lo: torch.Tensor, shape: tuple[int, ...]) -> np.ndarray:
        up = F.interpolate(lo[None], size=tuple(shape), mode="bilinear", align_corners=False)
        return torch.sigmoid(up)[0].numpy()

    # ----------------------------------------------------------------------------- files
    def config(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "architecture": "ContextAggregationNetwork",
            "params": {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in vars(self).items()
                if not k.endswith("_")
            },
            "classes": list(self.classes_),
            "scale": self.scale,
            "normalisation": {"mean": self.mean_, "std": self.std_},
            "pos_weight_class": self.pos_weight_class_,
            "pos_weight_seg": self.pos_weight_seg_,
            "image_thresholds": list(self.image_thresholds_),
            "pixel_threshold": self.pixel_threshold_,
            "best_epoch": self.best_epoch_,
        }

    def weights(self) -> dict[str, torch.Tensor]:
        """The state a model file keeps beside :meth:`config`."""
        return self.net_.state_dict()

    def save(self, path: str | Path, manifest: dict[str, Any]) -> Path:
        return save_model(path, kind="segmenter", config=self.config(), state_dict=self.weights(),
                          manifest=manifest)

    @classmethod
    def load(cls, path: str | Path) -> DefectSegmenter:
        with config_fits(path):
            return cls._from_file(path)

    @classmethod
    def _from_file(cls, path: str | Path):  # type: ignore[no-untyped-def]
        config, state = load_model(path, kind="segmenter")
        return segmenter_from_config(config, state, path)

    @classmethod
    def from_config(cls, config: dict[str, Any], state: dict[str, torch.Tensor], path: str | Path):  # type: ignore[no-untyped-def]
        """A trained segmenter from a model file's config and weights (``path`` for errors)."""
        params = dict(config["params"])
        params["dilations"] = tuple(params["dilations"])
        seg = cls(**params)
        seg.classes_ = list(config["classes"])
        seg.mean_ = float(config["normalisation"]["mean"])
        seg.std_ = float(config["normalisation"]["std"])
        seg.pos_weight_class_ = list(config["pos_weight_class"])
        seg.pos_weight_seg_ = list(config["pos_weight_seg"])
        seg.image_thresholds_ = image_thresholds_of(config)
        seg.pixel_threshold_ = float(config["pixel_threshold"])
        seg.best_epoch_ = config.get("best_epoch")
        seg.history_ = []
        net = seg._network(len(seg.classes_))
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise InputError(
                "the model file's weights do not fit its architecture", source=str(path)
            ) from exc
        seg.net_ = mixed_precision.prepare(net.eval(), "fp32", training=False)
        return seg


def sub_state(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``state`` under ``prefix``, the prefix removed (a part of a combined
    model's weights).

    >>> sorted(sub_state({"a.w": 1, "a.b": 2, "b.w": 3}, "a."))
    ['b', 'w']
    """
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def segmenter_from_config(config: dict[str, Any], state: dict[str, torch.Tensor], path: str | Path):  # type: ignore[no-untyped-def]
    """A trained segmenter of any architecture from a model file's config and weights."""
    architecture = config.get("architecture")
    if architecture == "SegmenterEnsemble":
        from detection.segmentation.ensemble import SegmenterEnsemble

        return SegmenterEnsemble.from_config(config, state, path)
    if architecture == "GatedSegmenter":
        from detection.segmentation.gated import GatedSegmenter

        return GatedSegmenter.from_config(config, state, path)
    if architecture == "StackedSegmenter":
        from detection.segmentation.stacked import StackedSegmenter

        return StackedSegmenter.from_config(config, state, path)
    return DefectSegmenter.from_config(config, state, path)


def image_thresholds_of(config: dict[str, Any]) -> list[float]:
    """A model file's image thresholds, one per class (files written before 2026-11-22 hold one
    ``image_threshold`` for every class)."""
    if "image_thresholds" in config:
        return [float(t) for t in config["image_thresholds"]]
    return [float(config["image_threshold"])] * len(config["classes"])


def _flip(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random horizontal/vertical flip of a whole batch of images and targets."""
    if rng.random() < 0.5:
        x, y = x.flip(3), y.flip(3)
    if rng.random() < 0.5:
        x, y = x.flip(2), y.flip(2)
    return x, y


def _map(true: np.ndarray, scores: np.ndarray) -> float:
    """Mean average precision over the defect-free class (score 1 - max) and each defect class."""
    from sklearn.metrics import average_precision_score

    full = np.column_stack([1.0 - scores.max(1), scores])
    aps = [
        float(average_precision_score(true == k, full[:, k]))
        for k in range(full.shape[1])
        if np.any(true == k)
    ]
    return float(np.mean(aps)) if aps else 0.0


def _per_class_loss(lows, targets, lam, pw_c, pw_s) -> list[float]:  # type: ignore[no-untyped-def]
    """Each class's blended loss over the validation images of that class (0 if none)."""
    per_image = []
    labels = []
    for lo, t in zip(lows, targets, strict=True):
        h, w = min(lo.shape[1], t.shape[1]), min(lo.shape[2], t.shape[2])
        lo, t = lo[:, :h, :w], t[:, :h, :w]
        lab = (t.amax(dim=(1, 2)) > 0).float()
        lc = F.binary_cross_entropy_with_logits(lo.amax(dim=(1, 2)), lab, pos_weight=pw_c, reduction="none")
        ls = F.binary_cross_entropy_with_logits(lo, t, pos_weight=pw_s[0], reduction="none").mean(dim=(1, 2))
        per_image.append((1.0 - lam) * lc + lam * ls)
        labels.append(lab)
    both, lv = torch.stack(per_image), torch.stack(labels)
    out = []
    for k in range(both.shape[1]):
        sel = lv[:, k] > 0
        out.append(float(both[sel, k].mean()) if bool(sel.any()) else 0.0)
    return out


def _selection_figures(lows, targets, masks) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Image-level mAP and the best low-resolution cell IoU (thresholds 0.5, 0.7, 0.9).

    Selection must not depend on a threshold: positive weights push every output up by design,
    and the thresholds are chosen after training. Their sum is the selection criterion.
    """
    prob = torch.sigmoid(torch.stack([lo.amax(dim=(1, 2)) for lo in lows]))
    true = np.array([int(np.max(m)) for m in masks])
    return _map(true, prob.numpy()), max(_cell_iou(lows, targets, t) for t in (0.5, 0.7, 0.9))


def _cell_iou(lows, targets, threshold: float) -> float:  # type: ignore[no-untyped-def]
    """Mean over classes of the dataset-level IoU of low-resolution cells (model selection).

    ``targets`` are the soft cell masks of :meth:`DefectSegmenter._target`; a cell is defect
    when any of its pixels is (a blowhole covers a fraction of one cell).
    """
    n = lows[0].shape[0]
    inter, union = torch.zeros(n), torch.zeros(n)
    for lo, t in zip(lows, targets, strict=True):
        t = t > 0
        h, w = min(lo.shape[1], t.shape[1]), min(lo.shape[2], t.shape[2])
        p = torch.sigmoid(lo[:, :h, :w]) >= threshold
        t = t[:, :h, :w]
        inter += (p & t).sum(dim=(1, 2)).float()
        union += (p | t).sum(dim=(1, 2)).float()
    present = union > 0
    return float((inter[present] / union[present]).mean()) if bool(present.any()) else 0.0


def _format_row(row: dict[str, Any]) -> str:
    s = f"epoch {row['epoch']:3d}  lam {row['lam']:.2f}  train_loss {row['train_loss']:.4f}"
    if "val_mAP" in row:
        s += f"  val_mAP {row['val_mAP']:.4f}  val_iou {row['val_iou']:.4f}"
    return s + f"  {row['seconds']:.1f}s"
