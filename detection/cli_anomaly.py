"""``coilmap detect train-anomaly | score | evaluate-anomaly``: the anomaly scorers' shell.

``train-anomaly --normal DIR`` splits the folder's images with the project's one partition
(:func:`coilmap.datasplit.mt_parts` keyed by the folder's class name, ``MT_Free`` for
``magnetic_tile/MT_Free/Imgs``, a tile's exposures in one part): *train* images fit the model,
*val* images pick the checkpoint and the thresholds, *test* images are left out for
``evaluate-anomaly``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from coilmap.config import shared_data_dir
from coilmap.datasplit import mt_parts
from coilmap.errors import InputError
from detection.cli_manifest import command_line, read_manifest, retuned_manifest, update_manifest
from detection.images import image_files, load_gray

# detection.anomaly.features.synthetic.ANOMALY_KINDS, written out so that --help needs no torch
ANOMALY_CHOICES = ("draem", "surface", "mixed", "natural", "draem_natural", "surface_streaks")

KINDS = ("draem", "patchcore", "ssim_ae", "ocsvm")


def _class_dir(folder: Path) -> str:
    """``MT_Free`` for ``.../MT_Free/Imgs``, else the folder's own name."""
    return folder.parent.name if folder.name == "Imgs" else folder.name


def _split_normal(folder: Path) -> tuple[list[Path], list[Path], str]:
    files = [p for p in image_files(folder) if not _is_mask(p)]
    class_dir = _class_dir(folder)
    parts = mt_parts(class_dir, [p.stem for p in files])
    train = [p for p in files if parts[p.stem] == "train"]
    val = [p for p in files if parts[p.stem] == "val"]
    if len(train) < 2 or not val:
        raise InputError(
            f"{len(files)} normal image(s) give {len(train)} train and {len(val)} val images; "
            "training needs at least 2 train and 1 val image (about 5 images in all)",
            source=str(folder),
        )
    return train, val, class_dir


def _is_mask(path: Path) -> bool:
    # magnetic-tile folders hold each image's mask beside it (id.jpg + id.png)
    return path.suffix.lower() == ".png" and path.with_suffix(".jpg").exists()


def _files_digest(files: list[Path]) -> str:
    h = hashlib.sha1()
    for p in files:
        h.update(p.name.encode())
        h.update(str(p.stat().st_size).encode())
    return h.hexdigest()[:16]


def _training_data(
    normal_dir: Path, split: tuple[list[Path], list[Path], str], use: str
) -> dict[str, Any]:
    """What a model was trained on: the folder, its train/val ``split`` (as
    :func:`_split_normal` made it before training; ``use`` says how each part served) and a
    digest of the files' names and sizes."""
    train_files, val_files, class_dir = split
    return {
        "folder": str(normal_dir),
        "class_dir": class_dir,
        "split": f"coilmap.datasplit.mt_parts(class_dir, stems), by tile: {use}",
        "n_train": len(train_files),
        "n_val": len(val_files),
        "files_sha1": _files_digest(train_files + val_files),
    }


def _log(entry: dict[str, float]) -> None:
    click.echo(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in entry.items()}),
               err=True)


def _pyramid_scales(text: str | None, kind: str, input_scale: float | None) -> list[float] | None:
    """``--pyramid-scales`` as numbers; a clear error for another kind or a malformed list."""
    if text is None:
        return None
    if kind != "patchcore" or input_scale is not None:
        raise InputError("--pyramid-scales applies to --kind patchcore, without --input-scale")
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise InputError(f"--pyramid-scales: comma-separated numbers, not {text!r}") from None


def _draem_encoders(base: Any) -> Any:
    """Both encoders (strides 4 and 8) of every DRAEM member of an ensemble as one extractor
    (else None)."""
    from detection.anomaly.draem.scorer import DraemScorer
    from detection.anomaly.ensemble.scorer import EnsembleScorer
    from detection.anomaly.features.draem_encoders import DraemEncoders

    members = getattr(base, "members_", []) if type(base) is EnsembleScorer else []
    if len(members) < 2 or not all(isinstance(m, DraemScorer) for m in members):
        return None
    return DraemEncoders.of([m.model_ for m in members], reconstructive_layers=(1, 2))


def _draem_training_precision(precision: str, width: int | None, crop_px: int | None) -> str:
    """``--precision`` of a DRAEM run resolved here (``auto`` measured, at the thread count
    already set), saying on stderr what ``auto`` chose or where bf16 is slower."""
    import torch

    from detection.anomaly.draem.torch_model import DraemModel
    from detection.mixed_precision import resolve_training_precision

    side = crop_px or 128
    resolved, message = resolve_training_precision(precision, DraemModel(width or 16).eval(),
                                                   torch.rand(8, 1, side, side))
    if message:
        click.echo(message, err=True)
    return resolved


@click.command("train-anomaly")
@click.option("--normal", "normal_dir", required=True, type=click.Path(path_type=Path),
              help="Folder of defect-free images (split train/val by coilmap.datasplit).")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path),
              help="Model file to write (.pt); a .json manifest is written beside it.")
@click.option("--kind", type=click.Choice(KINDS), default="draem", show_default=True)
@click.option("--features", "features_path", type=click.Path(path_type=Path), default=None,
              help="patchcore/ocsvm: a trained model whose learned features to reuse (draem, "
                   "patchcore or ocsvm); default: train a feature network first.")
@click.option("--features-kind", type=click.Choice(["selfsup", "draem", "neu"]), default="selfsup",
              show_default=True,
              help="patchcore/ocsvm without --features: the feature network to train "
                   "(selfsup: Perlin-anomaly segmentation on crops; draem: a DRAEM model); "
                   "neu: --features is a NEU classifier file (detect train-classifier).")
@click.option("--sources", "sources_dir", type=click.Path(path_type=Path), default=None,
              help="draem: texture images for synthetic anomalies (default: NEU train images).")
@click.option("--steps", type=int, default=None,
              help="Gradient steps (draem, ssim_ae, or the selfsup feature network).")
@click.option("--max-minutes", type=float, default=12.0, show_default=True,
              help="Wall-clock budget of gradient training.")
@click.option("--input-size", type=int, default=None, help="Square working size in pixels.")
@click.option("--input-scale", type=float, default=None,
              help="draem/patchcore/ocsvm: scale images by this factor keeping their aspect "
                   "ratio instead of resizing them to the square --input-size (draem then "
                   "trains on random --crop-px crops).")
@click.option("--crop-px", type=int, default=None, help="draem with --input-scale: training crop size.")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=None,
              help="draem: crops per training step (default 16).")
@click.option("--anomalies", type=click.Choice(ANOMALY_CHOICES), default=None,
              help="draem: synthetic anomalies, the paper's Perlin textures (draem), those plus "
                   "pits, cracks, bands and broken edges (surface), those with texture "
                   "blobs for 60 % (mixed), the surface kinds with regions of another "
                   "defect-free image made brighter, darker or more streaked (natural), or "
                   "the paper's textures with such regions (draem_natural).")
@click.option("--normalise", is_flag=True,
              help="draem: bring every image's median to one level before scoring.")
@click.option("--score-kernel", type=int, default=None,
              help="draem: the image score is the maximum of the map averaged over this many "
                   "working pixels square (default 9).")
@click.option("--width", type=int, default=None,
              help="Network base width (draem, ssim_ae, selfsup features).")
@click.option("--coreset-size", type=int, default=None, help="patchcore: memory-bank size.")
@click.option("--bank-dim", type=click.IntRange(1), default=None,
              help="patchcore: compare patches in a random projection to this many dimensions "
                   "(a smaller bank; the default model's 128).")
@click.option("--blur-sigma", type=click.FloatRange(0, 64), default=None,
              help="patchcore: Gaussian smoothing of the map in working pixels (default 4).")
@click.option("--pyramid-scales", default=None, metavar="S1,S2,...",
              help="patchcore: one memory bank per scale factor over one extractor, their "
                   "threshold-scaled maps averaged (e.g. 0.1,0.15,0.2,0.25; the default model's).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "auto"]), default="fp32", show_default=True,
              help="draem: bf16 trains in bfloat16 mixed precision, faster on many CPUs with "
                   "bfloat16 units (it warns where measured slower); auto: bf16 where the network "
                   "is measured faster in it here, else fp32. The model is saved in float32.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True,
              help="Torch threads (1 is fastest on a shared, busy machine).")
def train_anomaly(
    normal_dir: Path, out_path: Path, kind: str, features_path: Path | None, features_kind: str,
    sources_dir: Path | None, steps: int | None, max_minutes: float, input_size: int | None,
    input_scale: float | None, crop_px: int | None, batch_size: int | None, anomalies: str | None,
    normalise: bool,
    score_kernel: int | None, width: int | None, coreset_size: int | None, bank_dim: int | None,
    blur_sigma: float | None, pyramid_scales: str | None, precision: str, seed: int, threads: int,
) -> None:
    """Train an anomaly scorer on defect-free images and save it with its manifest."""
    import torch

    from detection.anomaly.artefact import load, save, scorer_classes
    from detection.anomaly.draem.scorer import DraemScorer
    from detection.anomaly.features import selfsup as _selfsup_module  # noqa: F401

    # Import every module a run needs now, not after minutes of training: a lazily imported
    # module would come from whatever the source tree holds by then.
    scorer_classes()

    torch.set_num_threads(threads)
    split = _split_normal(normal_dir)
    train_files, val_files, class_dir = split
    train = [load_gray(p) for p in train_files]
    val = [load_gray(p) for p in val_files]
    start = time.monotonic()
    common: dict[str, Any] = {"seed": seed}
    if input_size is not None:
        common["input_size"] = input_size
    if input_scale is not None:
        if kind not in ("draem", "patchcore", "ocsvm"):
            raise InputError("--input-scale applies to draem, patchcore and ocsvm only")
        common["input_scale"] = input_scale
    scales = _pyramid_scales(pyramid_scales, kind, input_scale)
    budget = max_minutes * 60

    def sources() -> list[np.ndarray]:
        if sources_dir is not None:
            return [load_gray(p) for p in image_files(sources_dir)]
        from detection.anomaly.mt_data import neu_train_sources

        return neu_train_sources(shared_data_dir())

    def draem(**extra: Any) -> DraemScorer:
        params = dict(common, max_seconds=budget, **extra)
        if steps is not None:
            params["steps"] = steps
        if width is not None:
            params["base_width"] = width
        if crop_px is not None:
            params["crop_px"] = crop_px
        if batch_size is not None:
            params["batch_size"] = batch_size
        if anomalies is not None:
            params["anomalies"] = anomalies
        if normalise:
            params["normalise"] = True
        if score_kernel is not None:
            params["score_kernel"] = score_kernel
        if precision != "fp32":
            params["precision"] = _draem_training_precision(precision, width, crop_px)
        return DraemScorer(**params).fit(train, X_val=val, sources=sources(), log=_log)

    def selfsup() -> Any:
        from detection.anomaly.base import resize_batch, resize_keep_aspect
        from detection.anomaly.features.selfsup import train_perlin_segnet

        extra: dict[str, Any] = {"steps": steps} if steps is not None else {}
        if width is not None:
            extra["width"] = width
        if "input_scale" in common:
            scale = common["input_scale"]
            train_t = [resize_keep_aspect(im, scale) for im in train]
            val_t = [resize_keep_aspect(im, scale) for im in val]
        else:
            size = common.setdefault("input_size", 256)
            train_t, val_t = list(resize_batch(train, size)), list(resize_batch(val, size))
        net, history = train_perlin_segnet(
            train_t, val_t, sources(), max_seconds=budget, seed=seed, log=_log, **extra
        )
        feature_history.extend(history)
        return net

    feature_history: list[dict[str, float]] = []

    if kind == "draem":
        scorer: Any = draem()
    elif kind == "ssim_ae":
        from detection.anomaly.ssim_ae.scorer import SsimAeScorer

        params = dict(common, max_seconds=budget)
        if steps is not None:
            params["steps"] = steps
        if width is not None:
            params["width"] = width
        scorer = SsimAeScorer(**params).fit(train, X_val=val, log=_log)
    else:
        if features_path is not None and features_kind == "neu":
            from detection.anomaly.features.neu import NeuClassifierFeatures

            extractor = NeuClassifierFeatures.from_classifier_file(features_path)
            common.setdefault("input_size", 256)
        elif features_path is not None:
            base = load(features_path)
            encoders = _draem_encoders(base)
            extractor = encoders or getattr(base, "feature_extractor", None) or getattr(base, "model_", None)
            if not hasattr(extractor, "features"):
                raise InputError(f"a {base.kind} model gives no features; use a draem, "
                                 "patchcore or ocsvm model", source=str(features_path))
            common.setdefault("input_size", base.input_size)
            if getattr(base, "input_scale", None) is not None:
                common.setdefault("input_scale", base.input_scale)
            learnt_normalised = getattr(base, "normalise", False) or (
                encoders is not None and all(m.normalise for m in base.members_))
            if learnt_normalised and kind == "patchcore":
                common["normalise"] = True  # the features were learned on normalised images
        elif features_kind == "neu":
            raise InputError("--features-kind neu needs --features NEU_CLASSIFIER.pt")
        elif features_kind == "draem":
            extractor = draem().model_
        else:
            extractor = selfsup()
        extra = {k: v for k, v in (("coreset_size", coreset_size), ("bank_dim", bank_dim),
                                   ("blur_sigma", blur_sigma)) if v is not None}
        if kind != "patchcore" and extra:
            raise InputError("--coreset-size, --bank-dim and --blur-sigma apply to --kind patchcore")
        if kind == "patchcore" and scales is not None:
            from detection.anomaly.patchcore.pyramid import PatchCorePyramid

            scorer = PatchCorePyramid(feature_extractor=extractor, input_scales=scales, seed=seed,
                                      normalise=bool(common.get("normalise")), **extra)
            scorer.fit(train, X_val=val)
        elif kind == "patchcore":
            from detection.anomaly.patchcore.scorer import PatchCoreScorer

            scorer = PatchCoreScorer(feature_extractor=extractor, **common, **extra)
            scorer.fit(train, X_val=val)
        else:
            from detection.anomaly.ocsvm.scorer import OcsvmScorer

            scorer = OcsvmScorer(feature_extractor=extractor, **common).fit(train, X_val=val)
    seconds = time.monotonic() - start
    training_data = _training_data(normal_dir, split, "train fits, val thresholds")
    manifest = {
        "command": command_line(),
        "training_seconds": round(seconds, 1),
        "history": getattr(scorer, "history_", None) or feature_history or None,
        "metrics": {},
    }
    manifest_path = save(scorer, out_path, training_data=training_data, manifest=manifest)
    click.echo(f"{scorer.kind} model -> {out_path} (manifest {manifest_path}); "
               f"trained in {seconds:.0f} s; image threshold {scorer.threshold_:.4g}")


@click.command("score")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", "model_path", type=click.Path(path_type=Path), default=None,
              help="Model file (default: the project's default model).")
@click.option("--heatmaps", "heatmap_dir", type=click.Path(path_type=Path), default=None,
              help="Write <stem>_heatmap.png overlays into this folder.")
@click.option("--class-probability", type=float, default=1.0, show_default=True,
              help="Defect-class probability multiplied into the heatmap.")
@click.option("--threads", type=int, default=1, show_default=True,
              help="Torch threads (1 is fastest on a shared, busy machine).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Score the images as this many runs at once, one torch thread each (on a "
                   "2-core machine --workers 2 beats --threads 2; the same figures).")
def score(images: tuple[Path, ...], model_path: Path | None, heatmap_dir: Path | None,
          class_probability: float, threads: int, workers: int) -> None:
    """Score images: prints CSV path,score,is_defect."""
    import torch
    from PIL import Image

    from detection.anomaly import load_scorer
    from detection.anomaly.heatmap import anomalous_feature_map, overlay_rgb

    torch.set_num_threads(threads)
    scorer = load_scorer(model_path)
    loaded = [load_gray(p) for p in images]  # every file checked before any output
    maps, scores = scorer.score_maps_and_samples(loaded, workers=workers)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["path", "score", "is_defect"])
    for path, s in zip(images, scores, strict=True):
        writer.writerow([str(path), f"{s:.6g}", int(s >= scorer.threshold_)])
    if heatmap_dir is not None:
        heatmap_dir.mkdir(parents=True, exist_ok=True)
        for path, image, m in zip(images, loaded, maps, strict=True):
            heat = anomalous_feature_map(m, class_probability)
            rgb = overlay_rgb(image, heat, vmax=2 * scorer.pixel_threshold_,
                              vmin=0.5 * scorer.pixel_threshold_)
            Image.fromarray(rgb, mode="RGB").save(heatmap_dir / f"{path.stem}_heatmap.png")


@click.command("evaluate-anomaly")
@click.option("--model", "model_path", type=click.Path(path_type=Path), default=None,
              help="Model file (default: the project's default model).")
@click.option("--data", "mt_root", type=click.Path(path_type=Path), default=None,
              help="The magnetic_tile folder (default: $COILMAP_SHARED_DATA/magnetic_tile).")
@click.option("--write-manifest", is_flag=True,
              help="Store the metrics (and this command) in the model's JSON manifest.")
@click.option("--limit-per-class", type=int, default=None, help="Only the first N test images per class.")
@click.option("--synthetic-val", is_flag=True,
              help="Instead of the test part: MT_Free val images against the same images with "
                   "synthetic anomalies (for choosing models without real defects).")
@click.option("--regions", is_flag=True,
              help="With --synthetic-val: also against the same images with a large region of "
                   "another val image (brighter, darker or more streaked), and the mean of the "
                   "four AUROCs.")
@click.option("--selection", is_flag=True,
              help="Instead of the test part: the real-defect selection set, MT_Free val "
                   "against the train and val parts of every defect class (no anomaly scorer "
                   "trains on those); the rule picks the higher mean of its two AUROCs.")
@click.option("--threads", type=int, default=1, show_default=True,
              help="Torch threads (1 is fastest on a shared, busy machine).")
def evaluate_anomaly(model_path: Path | None, mt_root: Path | None, write_manifest: bool,
                     limit_per_class: int | None, synthetic_val: bool, regions: bool,
                     selection: bool, threads: int) -> None:
    """Image and pixel AUROC on the magnetic-tile test part; prints JSON."""
    import torch

    from detection.anomaly import DEFAULT_MODEL, load_scorer
    from detection.anomaly.evaluate import evaluate_mt

    torch.set_num_threads(threads)
    if regions and not synthetic_val:
        raise InputError("--regions goes with --synthetic-val")
    if selection and synthetic_val:
        raise InputError("--selection and --synthetic-val are two different sets: one at a time")
    path = DEFAULT_MODEL if model_path is None else model_path
    scorer = load_scorer(path)
    root = mt_root if mt_root is not None else shared_data_dir() / "magnetic_tile"
    if synthetic_val:
        from detection.anomaly.evaluate import evaluate_synthetic_val
        from detection.anomaly.mt_data import neu_train_sources

        sources = neu_train_sources(Path(root).parent)
        result = evaluate_synthetic_val(scorer, root, sources, regions=regions)
        click.echo(json.dumps(result, indent=2))
        if write_manifest:
            update_manifest(Path(path).with_suffix(".json"),
                             "selection_with_regions" if regions else "selection",
                             {"command": command_line(), **result})
        return
    metrics = evaluate_mt(scorer, root, limit_per_class=limit_per_class, selection=selection)
    click.echo(json.dumps(metrics, indent=2))
    if write_manifest:
        update_manifest(Path(path).with_suffix(".json"), "selection_real" if selection else "metrics", {
            "command": command_line(),
            "data": str(root),
            "split": ("val part of MT_Free vs the train and val parts of every defect class"
                      if selection else "test part of MT_Free vs the test part of every defect class"),
            **metrics,
        })


@click.command("retune-anomaly")
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path),
              help="A trained draem model file, or an ensemble of draem models.")
@click.option("--normal", "normal_dir", required=True, type=click.Path(path_type=Path),
              help="The folder it was trained on (its val part sets the new thresholds).")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path))
@click.option("--score-kernel", type=int, default=None,
              help="draem: the new averaging window of the image score (working pixels).")
@click.option("--score-precision", type=click.Choice(["fp32", "bf16"]), default=None,
              help="Score in this precision; for an ensemble, every member. bf16 is used only "
                   "where the CPU runs the network faster in it (measured when the model loads), "
                   "fp32 elsewhere.")
@click.option("--map-sigma", type=click.FloatRange(0, 64), default=None,
              help="Smooth the anomaly map (not the image score) with a Gaussian of this many "
                   "working pixels; for an ensemble, every member.")
@click.option("--input-scale", type=click.FloatRange(0.05, 4.0), default=None,
              help="Score images scaled by this factor instead of the training scale (a smaller "
                   "scale shows each window more of the surface, and costs less); for an "
                   "ensemble, every member. Only for models trained with --input-scale.")
@click.option("--pixel-quantile", type=click.FloatRange(0.5, 1.0), default=None,
              help="The pixel threshold: this quantile of the val images' map values (trained: "
                   "0.995). A frame station wants a higher one, e.g. 0.9999: fewer false blobs "
                   "on clean frames; for an ensemble, every member and the ensemble.")
@click.option("--threads", type=int, default=1, show_default=True)
def retune_anomaly(model_path: Path, normal_dir: Path, out_path: Path, score_kernel: int | None,
                   score_precision: str | None, map_sigma: float | None, input_scale: float | None,
                   pixel_quantile: float | None, threads: int) -> None:
    """Change how a DRAEM model (or an ensemble of them) scores, without retraining: its
    image-score window, its precision, its map smoothing, its scale or the quantile its pixel
    threshold sits at; thresholds are set again from the val part of --normal (choose with
    evaluate-anomaly --selection). Any other model (the default, a PatchCore pyramid with
    map-only DRAEM members) takes --pixel-quantile alone."""
    import torch

    from detection.anomaly.artefact import load, save

    torch.set_num_threads(threads)
    changes = (score_kernel, score_precision, map_sigma, input_scale, pixel_quantile)
    if all(c is None for c in changes):
        raise InputError("give --score-kernel, --score-precision, --map-sigma, --input-scale or "
                         "--pixel-quantile")
    scorer = load(model_path)
    members = scorer.members_ if scorer.kind == "ensemble" else [scorer]
    if any(m.kind != "draem" for m in members):
        if any(c is not None for c in changes[:-1]):
            raise InputError(f"only --pixel-quantile retunes a {scorer.kind} model that is not "
                             "made of draem models alone", source=str(model_path))
        members = []  # only the model's own pixel threshold moves; its members' stay as fitted
    if score_kernel is not None:
        if scorer.kind != "draem":
            raise InputError("--score-kernel applies to a draem model, not an ensemble",
                             source=str(model_path))
        if score_kernel < 1 or score_kernel % 2 == 0:
            raise InputError(f"--score-kernel must be odd and positive, got {score_kernel}")
    if input_scale is not None and any(m.input_scale is None for m in members):
        raise InputError("--input-scale applies to models trained with --input-scale (this one "
                         "resizes every image to one square)", source=str(model_path))
    _, val_files, _ = _split_normal(normal_dir)
    val = [load_gray(p) for p in val_files]
    for m in members:  # each member's thresholds scale its scores inside an ensemble
        if score_kernel is not None:
            m.score_kernel = score_kernel
        if score_precision is not None:
            m.set_score_precision(score_precision)
            if m.scoring_precision_ != score_precision:
                click.echo(f"warning: this CPU has no bfloat16 units or runs the network slower "
                           f"in bf16, so the thresholds are set from {m.scoring_precision_} scores "
                           f"(a CPU where bf16 is faster scores in "
                           f"{score_precision}, within about 0.003 of the same figures)", err=True)
        if map_sigma is not None:
            m.map_sigma = map_sigma
        if input_scale is not None:
            m.input_scale = input_scale
        if pixel_quantile is not None:
            m.pixel_quantile = pixel_quantile
        m._calibrate(val, image_quantile=m.image_quantile, pixel_quantile=m.pixel_quantile)
    if scorer.kind != "draem":
        if pixel_quantile is not None:
            scorer.pixel_quantile = pixel_quantile
        scorer._calibrate(val, image_quantile=scorer.image_quantile,
                          pixel_quantile=scorer.pixel_quantile)
    # figures no longer true, and what save() writes itself
    drop = ("metrics", "selection", "selection_with_regions", "format", "format_version", "kind",
            "params", "threshold", "pixel_threshold", "training_data", "torch_version",
            "python_version", "size_bytes")
    manifest = retuned_manifest(read_manifest(model_path), {
        "command": command_line(), "from": str(model_path), "score_kernel": score_kernel,
        "score_precision": score_precision, "map_sigma": map_sigma, "input_scale": input_scale,
        "pixel_quantile": pixel_quantile,
    }, drop=drop)
    manifest["metrics"] = {}
    manifest_path = save(scorer, out_path, training_data=getattr(scorer, "training_data_", {}),
                         manifest=manifest)
    click.echo(f"{out_path} (manifest {manifest_path}): score window {score_kernel}, "
               f"score precision {score_precision}, map sigma {map_sigma}, input scale "
               f"{input_scale}, pixel quantile {pixel_quantile}, image threshold "
               f"{scorer.threshold_:.4g}, pixel threshold {scorer.pixel_threshold_:.4g}")


COMMANDS = [train_anomaly, score, evaluate_anomaly, retune_anomaly]
