"""Every page under AppTest: no exception on an empty and on the sample database, and the
elements a user relies on are there and behave."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dashboard_helpers import APP_DIR, Sample
from streamlit.testing.v1 import AppTest

PAGES = ("coil_map", "genealogy", "history", "ingestion", "data_tools")
TIMEOUT_S = 60


def run_page(name: str) -> AppTest:
    at = AppTest.from_file(str(APP_DIR / "pages" / f"{name}.py"), default_timeout=TIMEOUT_S)
    return at.run()


@pytest.mark.parametrize("page", PAGES)
def test_page_on_empty_database(page: str, use_empty: str) -> None:
    at = run_page(page)
    assert not at.exception, at.exception
    assert at.title[0].value
    if page != "data_tools":
        # Says plainly that there is nothing yet and what to run.
        assert any("`coilmap" in i.value for i in at.info), [i.value for i in at.info]


def test_page_on_unmigrated_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COILMAP_DATABASE_URL", f"sqlite:///{tmp_path / 'blank.sqlite'}")
    at = run_page("coil_map")
    assert not at.exception
    assert any("coilmap db upgrade" in w.value for w in at.warning)


def test_coil_map_shows_a_coil_and_every_station_image_of_a_defect(use_sample: Sample) -> None:
    at = run_page("coil_map")
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    assert {"Coil", "Length", "Width", "Observations on the coil", "On removed material"} <= set(labels)
    assert len(at.get("plotly_chart")) == 1
    # Graceful degradation: no fusion table yet, and the page says which command makes it.
    assert any("coilmap fuse apply" in i.value for i in at.info)

    final, ids = use_sample.info.shared_defect
    at.selectbox(key="coil_pick").set_value(final).run()
    at.selectbox(key="cm_defect_pick").set_value(ids[-1]).run()
    assert not at.exception, at.exception
    assert at.subheader[0].value.startswith(f"Defect #{ids[-1]}")
    captions = [c for img in at.get("image") for c in img.captions]
    stations = {c.split(" · ")[0] for c in captions}
    # The hot-mill station saw it on the hot coil and the final inspection on the final coil.
    assert any(s.startswith("HSM") for s in stations), captions
    assert any(s.startswith("INSP") for s in stations), captions
    assert not at.warning, [w.value for w in at.warning]


def test_coil_map_filters_narrow_the_defect_list(use_sample: Sample) -> None:
    at = run_page("coil_map")
    before = len(at.selectbox(key="cm_defect_pick").options)
    at.multiselect(key="cm_classes").set_value(["scratches"]).run()
    at.radio(key="cm_side").set_value("top").run()
    after = at.selectbox(key="cm_defect_pick").options
    assert not at.exception
    assert 1 <= len(after) < before
    assert all("scratches" in o and "· top ·" in o for o in after[1:])


def test_genealogy_lists_operations_and_opens_a_coil_map(use_sample: Sample) -> None:
    at = AppTest.from_file(str(APP_DIR / "app.py"), default_timeout=TIMEOUT_S).run()
    at.switch_page("pages/genealogy.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Genealogy"
    ops = set(at.dataframe[0].value["operation"])
    assert {"crop", "weld", "trim", "elongate", "cut"} <= ops
    hot = next(p for p in at.selectbox(key="gen_target").options if p in use_sample.info.hot_coils)
    at.selectbox(key="gen_target").set_value(hot).run()
    at.button(key="gen_open").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Coil map"
    assert at.metric[0].value == hot


def test_history_filters_and_csv(use_sample: Sample) -> None:
    at = run_page("history")
    assert not at.exception, at.exception
    total = int(at.metric[0].value.replace(",", ""))
    at.multiselect(key="h_classes").set_value(["inclusion"]).run()
    table = at.dataframe[0].value
    assert 0 < len(table) < total
    assert set(table["class"]) == {"inclusion"}
    assert len(at.get("plotly_chart")) == 3  # trend, along, across
    assert at.get("download_button")


def test_ingestion_shows_failed_run_and_quarantine(use_sample: Sample) -> None:
    at = run_page("ingestion")
    assert not at.exception, at.exception
    assert any("PL-T" in e.value and "permission denied" in e.value for e in at.error)
    status, quarantine = at.dataframe[0].value, at.dataframe[-1].value
    assert len(status) == 7
    assert {"bad_value", "corrupt_image"} <= set(quarantine["kind"])
    at.selectbox(key="q_station").set_value("INSP-T").run()
    assert set(at.dataframe[-1].value["station"]) == {"INSP-T"}


def test_data_tools_without_and_with_an_audit_report(
    use_sample: Sample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = run_page("data_tools")
    assert not at.exception
    assert any("coilmap dataset audit" in i.value for i in at.info)
    report = tmp_path / "audit.json"
    duplicates = [{"a": "x.png", "b": "y.png", "distance": 0}]
    report.write_text(json.dumps({"n_images": 1800, "duplicates": duplicates}))
    monkeypatch.setenv("COILMAP_AUDIT_REPORT", str(report))
    at = run_page("data_tools")
    assert not at.exception, at.exception
    assert any(m.value == "1800" for m in at.metric)
    assert list(at.dataframe[0].value.columns) == ["a", "b", "distance"]
