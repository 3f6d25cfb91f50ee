"""Every page under AppTest: no exception on an empty and on the sample database, and the
elements a user relies on are there and behave."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
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
    at.toggle(key="ing_auto").set_value(True).run()  # a screen left open on the night shift
    assert not at.exception, at.exception
    assert any(c.value.startswith("As of") for c in at.caption) and len(at.dataframe[0].value) == 7


def test_data_tools_without_and_with_an_audit_report(
    use_sample: Sample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COILMAP_SEARCH_INDEX", str(tmp_path / "no-index"))
    at = run_page("data_tools")
    assert not at.exception
    assert any("coilmap dataset audit" in i.value for i in at.info)
    assert any("coilmap dataset index" in i.value for i in at.info)
    report = tmp_path / "audit.json"
    per_class = [{"label": "crazing", "n_coils": 3}, {"label": "inclusion", "n_coils": 1}]
    leakage = {"random_folds": {"verdict": "contaminated"}, "train_to_test": {"verdict": "no alarm"}}
    findings = ["inclusion comes from a single coil: collect more coils"]
    report.write_text(
        json.dumps({"n_images": 1800, "per_class": per_class, "leakage": leakage, "findings": findings})
    )
    monkeypatch.setenv("COILMAP_AUDIT_REPORT", str(report))
    at = run_page("data_tools")
    assert not at.exception, at.exception
    assert any(m.value == "1800" for m in at.metric)
    assert list(at.dataframe[0].value["label"]) == ["crazing", "inclusion"]
    assert any("contaminated" in e.value for e in at.error)
    assert any("single coil" in md.value for md in at.markdown)


def test_similar_image_search_finds_lookalikes(use_sample: Sample, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("faiss")
    from dashboard import data
    from detection.images import load_gray
    from fusion.embeddings import ThumbnailEmbedder
    from fusion.search import SimilarityIndex

    stored = data.observations_by_id(use_sample.url, tuple(range(1, 400)))
    stored = stored[stored["image_ref"].notna()].reset_index(drop=True)
    emb = ThumbnailEmbedder(16)
    vectors = emb.embed([load_gray(use_sample.image_root / r) for r in stored["image_ref"]])
    meta = pd.DataFrame(
        {"id": stored["observation_id"].astype(str), "path": stored["image_ref"],
         "label": stored["plant_class"], "line": stored["line"], "station": stored["station"]}
    )  # fmt: skip
    SimilarityIndex().fit(vectors, meta).save(tmp_path / "index", {"embedder": emb.name})
    monkeypatch.setenv("COILMAP_SEARCH_INDEX", str(tmp_path / "index"))
    at = run_page("data_tools")
    query = int(stored["observation_id"][0])
    at.number_input(key="sim_id").set_value(query).run()
    at.number_input(key="sim_k").set_value(5).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    hits = at.dataframe[-1].value
    assert len(hits) == 5 and str(query) not in set(hits["id"])  # the query itself is left out
    assert hits["score"].is_monotonic_decreasing
    assert len(at.get("image")) == 1 + 5  # the query and each hit, from under the image root
    at.multiselect(key="sim_stations").set_value(["INSP-T"]).run()
    assert set(at.dataframe[-1].value["station"]) == {"INSP-T"}
