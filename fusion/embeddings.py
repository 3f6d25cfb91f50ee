"""Image embeddings for similar-image search: what turns a defect picture into a vector.

An embedder is anything with ``name`` (what made the vectors, recorded in the index so a query
is embedded the same way), ``dim`` and ``embed(images01) -> (N, dim) float32`` on grayscale
float images in [0, 1] of any size. Two are built in:

- :class:`ClassifierEmbedder`: the penultimate layer of the NEU defect classifier
  (:meth:`detection.classifier.DefectClassifier.embed`), the default when
  ``detection/default_models/neu_classifier.pt`` exists or a model file is given;
- :class:`ThumbnailEmbedder`: the image shrunk to 16 x 16 and standardised, a learning-free
  baseline that shows what the learned embedding adds.

>>> e = ThumbnailEmbedder()
>>> v = e.embed([np.zeros((40, 30)), np.eye(50)])
>>> v.shape, v.dtype.name
((2, 256), 'float32')
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from coilmap.errors import InputError

BATCH = 64


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, images01: Sequence[np.ndarray]) -> np.ndarray: ...


class ThumbnailEmbedder:
    """The image resized to ``side_px`` squared (area average), zero mean and unit norm."""

    def __init__(self, side_px: int = 16) -> None:
        self.side_px = side_px
        self.name = f"thumbnail{side_px}"
        self.dim = side_px * side_px

    def embed(self, images01: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(images01), self.dim), dtype=np.float32)
        for i, im in enumerate(images01):
            arr = np.asarray(im, dtype=np.float32)
            small = Image.fromarray(arr, mode="F").resize((self.side_px, self.side_px), Image.Resampling.BOX)
            v = np.array(small, dtype=np.float32).ravel()
            v -= v.mean()
            out[i] = v / max(float(np.linalg.norm(v)), 1e-6)
        return out


class ClassifierEmbedder:
    """The penultimate-layer features of a trained :class:`DefectClassifier`."""

    def __init__(self, classifier, name: str) -> None:  # classifier: DefectClassifier
        self.classifier = classifier
        self.name = name
        self.dim = int(classifier.embedding_dim)

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> ClassifierEmbedder:
        """The classifier at ``path`` (default: the project's NEU classifier); its name holds
        the file's sha256 so an index refuses queries embedded by another model."""
        from detection.classifier import DEFAULT_MODEL, load_classifier

        path = Path(DEFAULT_MODEL if path is None else path)
        if not path.is_file():
            raise InputError(
                "no classifier model file (train one with `coilmap detect train-classifier`, "
                "or index with --embedder thumbnail)",
                source=str(path),
            )
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        return cls(load_classifier(path), f"classifier:{path.name}:{digest}")

    def embed(self, images01: Sequence[np.ndarray]) -> np.ndarray:
        return np.asarray(self.classifier.embed(list(images01)), dtype=np.float32)


def make_embedder(kind: str, model_path: str | Path | None = None) -> Embedder:
    """``classifier`` (``model_path`` or the default model) or ``thumbnail``."""
    if kind == "classifier":
        return ClassifierEmbedder.from_file(model_path)
    if kind == "thumbnail":
        return ThumbnailEmbedder()
    raise InputError(f"unknown embedder {kind!r}; use classifier or thumbnail", field="embedder")


def embedder_for_index(name: str, model_path: str | Path | None = None) -> Embedder:
    """The embedder that made an index's vectors (by the name the index recorded)."""
    if name.startswith("thumbnail"):
        return ThumbnailEmbedder(int(name[len("thumbnail") :]))
    emb = ClassifierEmbedder.from_file(model_path)
    if emb.name != name:
        raise InputError(
            f"the index was built with {name}, not {emb.name}: pass the same --model or rebuild the index",
            field="model",
        )
    return emb


def embed_files(paths: Sequence[str | Path], embedder: Embedder) -> np.ndarray:
    """Embed image files in batches (clear errors for missing or unreadable files)."""
    from detection.images import load_gray

    out = np.zeros((len(paths), embedder.dim), dtype=np.float32)
    for s in range(0, len(paths), BATCH):
        chunk = paths[s : s + BATCH]
        out[s : s + len(chunk)] = embedder.embed([load_gray(p) for p in chunk])
    return out
