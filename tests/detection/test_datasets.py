"""Finding labelled images: the three layouts, the parts, and a clear error for each bad folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from coilmap.datasplit import mt_parts, mt_tile_groups, neu_part
from coilmap.errors import InputError
from detection.datasets import discover, load_mask, read_voc_boxes


def _png(path: Path, value: int = 128, size: tuple[int, int] = (12, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, value, np.uint8), mode="L").save(path)
    return path


def test_folder_per_class_gives_every_class_a_train_and_a_val_image(tmp_path: Path) -> None:
    for c, n in (("dent", 2), ("scale", 7), ("oil", 3)):
        for i in range(n):
            _png(tmp_path / c / f"{c}{i}.png")
    data = discover(tmp_path)
    assert data.layout == "folders"
    assert data.classes == ("dent", "oil", "scale")
    assert sum(data.counts("train", "val", "test").values()) == 12
    for c in data.classes:
        assert data.counts("train")[c] >= 1 and data.counts("val")[c] >= 1


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text("abcdefgh", min_size=1, max_size=6), min_size=2, max_size=12, unique=True))
def test_any_class_of_two_or_more_images_is_split_into_train_and_val(names: list[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        for name in names:
            _png(root / "a" / f"{name}.png")
            _png(root / "b" / f"{name}.png")
        data = discover(root)
        parts = {it.part for it in data.items if it.label == "a"}
        assert {"train", "val"} <= parts
        assert data.describe() == discover(root).describe()  # deterministic


def test_bad_folders_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        discover(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no sub-folders"):
        discover(tmp_path / "empty")
    _png(tmp_path / "one" / "a" / "x.png")
    _png(tmp_path / "one" / "a" / "y.png")
    _png(tmp_path / "one" / "b" / "z.png")
    with pytest.raises(InputError, match="class 'b' has only one image") as err:
        discover(tmp_path / "one")
    assert str(tmp_path / "one" / "b") in str(err.value)
    (tmp_path / "nofiles" / "a").mkdir(parents=True)
    with pytest.raises(InputError, match="holds no images"):
        discover(tmp_path / "nofiles")
    _png(tmp_path / "single" / "a" / "x.png")
    _png(tmp_path / "single" / "a" / "y.png")
    with pytest.raises(InputError, match="at least 2 class folders"):
        discover(tmp_path / "single")


def test_neu_layout_never_lists_render_images_and_follows_datasplit(shared_data: Path) -> None:
    data = discover(shared_data / "neu_det")
    assert data.layout == "neu"
    assert len(data.classes) == 6
    assert all(it.part != "render" for it in data.items)
    assert all(it.part == neu_part(it.path.stem) for it in data.items)
    n_files = len(list((shared_data / "neu_det" / "IMAGES").glob("*.jpg")))
    n_render = sum(neu_part(p.stem) == "render" for p in (shared_data / "neu_det" / "IMAGES").glob("*.jpg"))
    assert len(data.items) == n_files - n_render
    for it in data.items[:200]:
        for x0, y0, x1, y1 in it.all_boxes:
            assert 0 <= x0 < x1 <= 200 and 0 <= y0 < y1 <= 200
        assert set(it.boxes) <= set(it.all_boxes)


def test_mt_layout_has_masks_and_the_free_class_first(shared_data: Path) -> None:
    data = discover(shared_data / "magnetic_tile")
    assert data.layout == "mt"
    assert data.classes[0] == "Free" and "Blowhole" in data.classes
    assert all(it.mask_path is not None and it.mask_path.is_file() for it in data.items)
    parts_of_tile: dict[tuple[str, int], set[str]] = {}
    for label in data.classes:
        items = [it for it in data.items if it.label == label]
        parts = mt_parts(f"MT_{label}", [it.path.stem for it in items])
        assert [it.part for it in items] == [parts[it.path.stem] for it in items]
        assert {it.part for it in items} == {"train", "val", "test"}, label
        groups = mt_tile_groups([it.path.stem for it in items])
        for it in items:
            parts_of_tile.setdefault((label, groups[it.path.stem]), set()).add(it.part)
    assert all(len(parts) == 1 for parts in parts_of_tile.values())  # a tile's exposures in one part


def test_voc_and_mask_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "a.xml"
    bad.write_text("<annotation><object><name>x</name>")
    with pytest.raises(InputError, match="Pascal VOC") as err:
        read_voc_boxes(bad)
    assert "a.xml" in str(err.value)
    good = tmp_path / "b.xml"
    good.write_text(
        "<annotation><object><name>scratches</name><bndbox><xmin>2</xmin><ymin>3</ymin>"
        "<xmax>10</xmax><ymax>20</ymax></bndbox></object><object><name>patches</name><bndbox>"
        "<xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>"
    )
    assert read_voc_boxes(good, "scratches") == ((1, 2, 10, 20),)
    assert len(read_voc_boxes(good)) == 2

    from detection.datasets import LabelledImage

    mask = _png(tmp_path / "m.png", 255, (5, 5))
    item = LabelledImage(tmp_path / "i.jpg", "Crack", "train", mask_path=mask)
    assert load_mask(item, (5, 5)).all()
    with pytest.raises(InputError, match="mask shape"):
        load_mask(item, (6, 5))
