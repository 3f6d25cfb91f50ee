"""Labelled image tables from the NEU folder, a CSV file and the coil model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from coilmap.db import session_factory, transaction
from coilmap.errors import InputError
from fusion.image_table import csv_table, db_table, load_table, neu_table
from tracking.events import parse_events
from tracking.store import create_observations, create_station, import_events

EVENTS = [
    '{"op":"create","piece":"A","length_mm":1000,"width_mm":1000,"grade":"S235JR","line":"HSM"}',
    '{"op":"create","piece":"B","length_mm":500,"width_mm":1000,"grade":"DC04","line":"HSM"}',
    '{"op":"weld","inputs":["A","B"],"output":"W","line":"PL"}',
    '{"op":"cut","input":"W","outputs":[{"piece":"F1","from_mm":0,"to_mm":1200},'
    '{"piece":"F2","from_mm":1200,"to_mm":1500}],"line":"CTL"}',
]


@pytest.mark.db
def test_coil_group_of_an_observation_is_the_hot_coil_its_spot_came_from(engine) -> None:  # type: ignore[no-untyped-def]
    def obs(station: str, piece: str, key: str, x: float, cls: str | None) -> dict:
        t = pd.Timestamp("2026-11-01T09:00:00Z").to_pydatetime()
        return {"station": station, "piece": piece, "side": "top", "x_mm": x, "y_mm": 0.0,
                "observed_at": t, "source_key": key, "plant_class": cls,
                "image_ref": f"/img/{key}.png"}  # fmt: skip

    with transaction(engine) as session:
        import_events(parse_events(EVENTS, "w.jsonl"), session=session, source="w.jsonl")
        create_station("PL-T", line="PL", side="top", session=session)
        create_station("CTL-T", line="CTL", side="top", session=session)
        create_observations(
            [
                obs("PL-T", "W", "w-a", 400.0, "scratches"),  # from A
                obs("PL-T", "W", "w-b", 1100.0, "inclusion"),  # from B
                obs("CTL-T", "F1", "f1-b", 1100.0, "patches"),  # F1 spans the seam: from B
                obs("CTL-T", "F2", "f2-b", 100.0, "patches"),  # only B
                obs("CTL-T", "F2", "f2-none", 50.0, None),  # no class: not in the table
            ],
            session=session,
        )
    with session_factory(engine)() as session:
        table = db_table(session=session)
    coil = dict(zip(table["path"].str.extract(r"/img/(.*)\.png")[0], table["coil"], strict=True))
    assert coil == {"w-a": "A", "w-b": "B", "f1-b": "B", "f2-b": "B"}
    row = table[table["path"] == "/img/w-a.png"].iloc[0]
    assert (row["label"], row["station"], row["line"]) == ("scratches", "PL-T", "PL")


def test_neu_folder_has_classes_and_parts_and_no_metadata(shared_data: Path) -> None:
    table = neu_table(shared_data, hashes=False)
    assert len(table) == len(list((shared_data / "neu_det" / "IMAGES").glob("*.jpg")))
    assert set(table["split"]) == {"train", "val", "test", "render"}
    one = table["path"].str.endswith("/rolled-in_scale_1.jpg")
    assert table.loc[one, "label"].item() == "rolled-in_scale"
    assert "coil" not in table


def test_csv_paths_are_resolved_and_bad_files_named(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "t.csv").write_text("path,label,split\na.png,x,TRAIN\n/abs/b.png,y,test\n")
    table = csv_table(tmp_path / "sub" / "t.csv")
    assert table["path"].tolist() == [str((tmp_path / "sub" / "a.png").resolve()), "/abs/b.png"]
    assert table["split"].tolist() == ["train", "test"]
    (tmp_path / "nolabel.csv").write_text("path\na.png\n")
    with pytest.raises(InputError, match="nolabel.csv: missing column 'label'"):
        csv_table(tmp_path / "nolabel.csv")
    (tmp_path / "bad_time.csv").write_text("path,label,time\na.png,x,2026-01-01\n,y,soon\n")
    with pytest.raises(InputError, match="bad_time.csv:3: field time"):
        csv_table(tmp_path / "bad_time.csv")
    with pytest.raises(InputError, match="not a CSV file"):
        load_table(str(tmp_path / "missing.txt"))
