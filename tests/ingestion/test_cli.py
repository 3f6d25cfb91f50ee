"""The commands an operator types: config from a plant, one line once, status, quarantine,
requeue."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ingestion.cli import ingest
from tests.ingestion.helpers import copy_plant

pytestmark = pytest.mark.db


def test_config_ingest_status_requeue(db_url: str, engine, plant_src: Path, tmp_path: Path) -> None:
    plant = copy_plant(plant_src, tmp_path / "plant", stations=["PL-T", "SL-T"])
    (plant / "stations" / "PL-T" / "defects_broken.csv").write_text("DefectNo;Nothing\n1;2\n")
    runner = CliRunner()
    cfg = tmp_path / "ingest.toml"
    r = runner.invoke(ingest, ["config", "--from-plant", str(plant), "--out", str(cfg), "--interval-s", "5"])
    assert r.exit_code == 0 and "2 stations" in r.output, r.output
    text = cfg.read_text().replace("settle_s = 5.0", "settle_s = 0.0")
    cfg.write_text(text)

    r = runner.invoke(ingest, ["--config", str(cfg), "--db", db_url, "--line", "PL", "--once"])
    assert r.exit_code == 0, r.output
    n_rows = len((plant / "stations" / "PL-T" / "defects.csv").read_text().splitlines()) - 1
    assert "events: 1 imported" in r.output and f"PL-T: ok, 3 files, {n_rows} observations" in r.output
    assert "1 quarantined" in r.output and "SL-T" not in r.output

    r = runner.invoke(ingest, ["status", "--config", str(cfg), "--db", db_url])
    assert r.exit_code == 0, r.output
    pl = next(line for line in r.output.splitlines() if " PL-T " in line)
    assert "ok" in pl and "0/0/2/1" in pl, r.output

    r = runner.invoke(ingest, ["quarantine", "--db", db_url])
    assert r.exit_code == 0 and "defects_broken.csv" in r.output and "bad_table" in r.output, r.output

    r = runner.invoke(ingest, ["requeue", "--station", "PL-T", "--db", db_url])
    assert r.exit_code == 0 and "1 files of PL-T queued again" in r.output, r.output
    r = runner.invoke(ingest, ["--config", str(cfg), "--db", db_url, "--station", "PL-T", "--once"])
    # The same broken file is quarantined once: the record is not repeated.
    assert r.exit_code == 0 and "PL-T: ok, 1 files, 0 observations" in r.output, r.output


def test_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[stations]]\ncode = "S"\nline = "L"\nside = "top"\nexport = "frames"\nfolder = "s"\n')
    r = CliRunner().invoke(
        ingest, ["--config", str(cfg), "--db", f"sqlite:///{tmp_path / 'x.sqlite'}", "--line", "L", "--once"]
    )
    assert r.exit_code != 0 and "coilmap db upgrade" in str(r.exception or r.output)
