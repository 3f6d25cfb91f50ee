"""The fusion shell: fuse roll-marks on the coil model, dataset audit / split / index / search."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from coilmap.db import transaction
from fusion.cli import dataset, fuse
from tracking.events import parse_events
from tracking.store import create_observations, create_station, import_events

from .helpers import coil_table
from .test_roll_marks import EVENTS


def observation(station: str, piece: str, key: str, x: float, y: float, side: str, **kw: str) -> dict:
    return {
        "station": station,
        "piece": piece,
        "side": side,
        "x_mm": x,
        "y_mm": y,
        "observed_at": pd.Timestamp("2026-11-01T09:00:00Z").to_pydatetime(),
        "source_key": key,
        **kw,
    }


def _rows(output: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(output)))


@pytest.mark.db
def test_roll_marks_on_the_coil_model_point_to_the_hot_mill_roll(
    engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(4)
    k = np.arange(3, 40)
    x_h = 6000.0 + math.pi * 720.0 * k + rng.normal(0, 3.0, len(k))
    with transaction(engine) as session:
        import_events(parse_events(EVENTS, "roll.jsonl"), session=session, source="roll.jsonl")
        create_station("HSM-T", line="HSM", side="top", session=session)
        create_station("CAL-B", line="CAL", side="bottom", session=session)
        rows = [
            observation("HSM-T", "H", f"m{i}", float(x), 250.0, "top", plant_class="patches")
            for i, x in enumerate(x_h)
        ]
        rows += [
            observation("CAL-B", "F", f"n{i}", float(x), float(y), "bottom", plant_class="patches")
            for i, (x, y) in enumerate(
                zip(rng.uniform(0, 340_000, 30), rng.uniform(-600, 600, 30), strict=True)
            )
        ]
        create_observations(rows, session=session)
    monkeypatch.setenv("COILMAP_DATABASE_URL", db_url)
    args = ["roll-marks", "F", "--min-period-mm", "1000", "--max-period-mm", "12000", "--n-null", "19"]
    result = CliRunner().invoke(fuse, [*args, "--alpha", "0.05", "--csv"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    found = _rows(result.output)
    best = found[0]
    assert (best["class"], best["frame"], best["candidate_piece"], best["candidate_line"]) == (
        "patches",
        "H",
        "H",
        "HSM",
    )
    assert float(best["roll_diameter_mm"]) == pytest.approx(720.0, abs=1.0)
    assert best["plausible"] == "True"
    assert len(best["observation_ids"].split()) == len(k)
    text = CliRunner().invoke(fuse, [*args, "--alpha", "0.05"], catch_exceptions=False).output
    assert "roll diameter" in text and "HSM" in text
    pooled = CliRunner().invoke(fuse, [*args, "--alpha", "0.05", "--pool-classes", "--csv"]).output
    assert _rows(pooled)[0]["class"] == "(any class)"
    # A roll-diameter range that excludes 720 mm makes the hot mill implausible.
    narrow = CliRunner().invoke(fuse, [*args, "--alpha", "0.05", "--csv", "--roll-diameter", "HSM=500:600"])
    assert {r["plausible"] for r in _rows(narrow.output) if r["candidate_line"] == "HSM"} == {"False"}
    bad = CliRunner().invoke(fuse, [*args, "--roll-diameter", "HSM=600"])
    assert bad.exit_code != 0 and "LINE=MIN:MAX" in str(bad.exception)


def test_audit_split_and_audit_again_from_csv(tmp_path: Path) -> None:
    table = coil_table(n_coils=36, per_coil=6, seed=5)
    table["split"] = np.where(np.random.default_rng(1).random(len(table)) < 0.25, "test", "train")
    table.to_csv(tmp_path / "images.csv", index=False)
    runner = CliRunner()
    out = tmp_path / "report" / "audit.json"
    fast = ["--permutations", "19", "--alpha", "0.05"]
    res = runner.invoke(
        dataset,
        [
            "audit",
            str(tmp_path / "images.csv"),
            "--json",
            str(out),
            "--html",
            str(tmp_path / "a.html"),
            *fast,
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    assert "leakage alarm: CONTAMINATED" in res.output
    report = json.loads(out.read_text())
    assert report["schema"] == "coilmap-dataset-audit/1" and report["leakage"]["verdict"] == "contaminated"
    assert "<h1>Dataset audit</h1>" in (tmp_path / "a.html").read_text()

    res = runner.invoke(
        dataset, ["split", str(tmp_path / "images.csv"), "--out", str(tmp_path / "split.csv"), "--seed", "2"]
    )
    assert res.exit_code == 0, res.output
    split = pd.read_csv(tmp_path / "split.csv")
    assert (split.groupby("coil")["split"].nunique() == 1).all()
    res = runner.invoke(dataset, ["audit", str(tmp_path / "split.csv"), *fast], catch_exceptions=False)
    assert "leakage alarm: NO ALARM" in res.output
    assert "coils shared train/test: 0" in res.output


def test_audit_of_bad_csv_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("path,label,time\na.png,x,2026-01-01\nb.png,y,soon\n")
    from coilmap.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["dataset", "audit", str(tmp_path / "bad.csv")])
    assert exc.value.code == 2


def test_neu_folder_audit_reports_no_metadata(shared_data: Path) -> None:
    res = CliRunner().invoke(dataset, ["audit", str(shared_data / "neu_det")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "the images carry no metadata" in res.output
    assert "leakage alarm: NOT AVAILABLE" in res.output
    assert "across parts: 0" in res.output


def _images(folder: Path, n: int, seed: int) -> pd.DataFrame:
    """Horizontal stripes ('scratches') and dark blobs ('pitted_surface'), 40 x 40 px."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    yy, xx = np.mgrid[0:40, 0:40]
    for i in range(n):
        if i % 2:
            img = 0.5 + 0.3 * np.sin(yy / rng.uniform(1.5, 3.0) + rng.uniform(0, 6))
            label = "scratches"
        else:
            cy, cx = rng.uniform(8, 32, 2)
            img = 0.7 - 0.5 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / rng.uniform(10, 40))
            label = "pitted_surface"
        img = np.clip(img + rng.normal(0, 0.04, img.shape), 0, 1)
        path = folder / f"{label}_{i}.png"
        Image.fromarray((img * 255).astype(np.uint8)).save(path)
        rows.append({"path": path.name, "label": label, "grade": "DC04" if i % 3 else "S235JR"})
    return pd.DataFrame(rows)


def test_index_and_search_with_a_classifier_trained_here(tmp_path: Path) -> None:
    from detection.classifier import DefectClassifier
    from detection.images import load_gray

    table = _images(tmp_path / "img", 48, seed=0)
    table.to_csv(tmp_path / "img" / "images.csv", index=False)
    images = [load_gray(tmp_path / "img" / p) for p in table["path"]]
    labels = (table["label"] == "scratches").astype(int).tolist()
    clf = DefectClassifier(input_px=32, widths=(8, 16), blocks_per_stage=1, epochs=4, batch_size=16, tta=1)
    clf.fit(images, labels, classes=["pitted_surface", "scratches"])
    clf.save(tmp_path / "tiny.pt", {"data": "test images"})

    runner = CliRunner()
    csv_path = str(tmp_path / "img" / "images.csv")
    res = runner.invoke(
        dataset,
        ["index", csv_path, "--out", str(tmp_path / "idx"), "--model", str(tmp_path / "tiny.pt")],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    assert "indexed 48 images" in res.output
    query = tmp_path / "img" / "scratches_1.png"
    res = runner.invoke(
        dataset,
        ["search", "--index", str(tmp_path / "idx"), "--image", str(query), "-k", "10"],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    hits = _rows(res.output)
    assert len(hits) == 10
    assert str(query.resolve()) not in {h["path"] for h in hits}  # not itself
    assert sum(h["label"] == "scratches" for h in hits) >= 8
    res = runner.invoke(
        dataset,
        ["search", "--index", str(tmp_path / "idx"), "--image", str(query), "--grade", "S235JR", "-k", "30"],
        catch_exceptions=False,
    )
    hits = _rows(res.output)
    assert len(hits) == 16 and {h["grade"] for h in hits} == {"S235JR"}
    # A query embedded by another model is refused.
    other = CliRunner().invoke(
        dataset, ["search", "--index", str(tmp_path / "idx"), "--image", str(query), "--model", csv_path]
    )
    assert other.exit_code != 0


def test_search_needs_exactly_one_query(tmp_path: Path) -> None:
    from coilmap.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["dataset", "search", "--index", str(tmp_path)])
    assert exc.value.code == 2
