"""Once a fused model exists, every ingestion run fuses what it stored (issue: fusion)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from coilmap import models as m
from coilmap.db import session_factory
from fusion.model_file import DEFAULT_MODEL
from ingestion.plant import ingest_plant
from tests.ingestion.helpers import copy_plant, count, plant_config

TABLES = ["PL-T", "PL-B", "SL-T"]


def test_runs_fuse_new_observations_with_their_upstream_evidence(
    engine, plant_src: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    plant = copy_plant(plant_src, tmp_path / "plant", stations=TABLES)
    cfg = plant_config(plant, tmp_path / "images", fused_model=DEFAULT_MODEL)
    summary = ingest_plant(cfg, engine=engine)
    assert all(r.status == "ok" and not r.errors for r in summary.runs), summary.text()
    n_obs = count(engine, m.Observation)
    assert n_obs > 0 and count(engine, m.FusionResult) == n_obs
    with session_factory(engine)() as s:
        # The slitting line's observations lie on material the pickling stations saw: some of
        # them must carry upstream evidence from PL-T or PL-B.
        rows = s.execute(
            select(m.FusionResult.evidence, m.FusionResult.real_probability)
            .join(m.Observation, m.Observation.id == m.FusionResult.observation_id)
            .join(m.Station, m.Station.id == m.Observation.station_id)
            .where(m.Station.code == "SL-T")
        ).all()
        assert rows and all(0.0 <= p <= 1.0 for _, p in rows)
        used = [e for ev, _ in rows for e in ev]
        assert used and {e["station"] for e in used} <= {"PL-T", "PL-B"}
        versions = set(s.scalars(select(m.FusionResult.model_version).distinct()))
    assert len(versions) == 1
    # A second run stores nothing new and fuses nothing again.
    again = ingest_plant(cfg, engine=engine)
    assert again.n_observations == 0 and all(r.n_fused == 0 for r in again.runs)
    with session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(m.FusionResult)) == n_obs


def test_eval_plant_shows_the_fusion_gain(engine, plant_src: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from coilmap.cli import main

    plant = copy_plant(plant_src, tmp_path / "plant", stations=TABLES)
    ingest_plant(plant_config(plant, tmp_path / "images", fused_model=DEFAULT_MODEL), engine=engine)
    url = engine.url.render_as_string(hide_password=False)
    with pytest.raises(SystemExit) as done:
        main(["eval", "plant", str(plant_src), "--url", url, "--fusion"])
        raise SystemExit(0)
    out = capsys.readouterr().out
    assert done.value.code == 0
    assert "fusion gain" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["PL-T"], ["PL-B"], ["SL-T"])]
    models = {(r[0], r[1]) for r in rows if len(r) > 1}
    assert {("SL-T", "fused"), ("SL-T", "image_only"), ("SL-T", "image_classifier")} <= models


def test_fuse_train_chooses_a_pseudo_threshold_that_apply_keeps(
    engine, plant_src: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from coilmap.cli import cli
    from fusion.model_file import load

    plant = copy_plant(plant_src, tmp_path / "plant", stations=TABLES)
    ingest_plant(plant_config(plant, tmp_path / "images"), engine=engine)
    url = engine.url.render_as_string(hide_password=False)
    labels = tmp_path / "labels.csv"
    run = CliRunner().invoke(cli, ["eval", "labels", str(plant_src), "--url", url, "--out", str(labels)])
    assert run.exit_code == 0, run.output
    out = tmp_path / "fused.pkl"
    args = ["fuse", "train", "--labels", str(labels), "--url", url, "--out", str(out), "--real-loss", "0.3"]
    run = CliRunner().invoke(cli, args)
    assert run.exit_code == 0, run.output
    assert "fused: pseudo only where its probability >=" in run.output
    model = load(out)
    threshold = model.estimator.pseudo_threshold
    assert model.manifest["real_loss"] == 0.3 and model.manifest["pseudo_threshold"] == threshold
    assert 0.0 < threshold <= 1.0
    run = CliRunner().invoke(cli, ["fuse", "apply", "--model", str(out), "--url", url])
    assert run.exit_code == 0, run.output
    with session_factory(engine)() as s:
        rows = s.execute(select(m.FusionResult.fused_class, m.FusionResult.real_probability)).all()
    assert rows and any(c == "pseudo" for c, _ in rows) and any(c != "pseudo" for c, _ in rows)
    # Pseudo exactly where its probability (1 - real) reaches the stored threshold.
    for cls, real in rows:
        assert (cls == "pseudo") == (1.0 - real >= threshold - 1e-12), (cls, real)
