"""The dashboard as a person uses it: a real Streamlit server on the sample database, driven
in Debian's Chromium by Playwright (never a downloaded browser). One browser session serves
both scenarios; screenshots go to ``test-artifacts/`` at the repository root.

Skipped when ``/usr/bin/chromium`` is missing, except under ``CI=true`` where it must exist.
"""

from __future__ import annotations

import csv
import io
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashboard_helpers import REPO_ROOT, Sample

from dashboard.cli import server_env, serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    # WebGL (the coil map's scatter) on the CPU: headless Chromium without a GPU.
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"
TIMEOUT_MS = 30_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(sample: Sample) -> Iterator[str]:
    port = _free_port()
    env = server_env(sample.url, sample.image_root)
    env["COILMAP_AUDIT_REPORT"] = str(sample.image_root / "none.json")
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / "dashboard-server.log"
    with log_path.open("w") as log:
        try:
            with serving(env, port, output=log) as base:
                yield base
        except RuntimeError as exc:
            pytest.fail(f"{exc} (see {log_path})")


@pytest.fixture(scope="module")
def page():  # type: ignore[no-untyped-def]
    """One browser page for every scenario (tests ask for it before ``server``, so a missing
    Chromium skips them before a server starts)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is required under CI=true (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 2000}, accept_downloads=True)
            pg = context.new_page()
            pg.set_default_timeout(TIMEOUT_MS)
            yield pg
            context.close()
        finally:
            browser.close()


def choose(page, label: str, option: str) -> None:  # type: ignore[no-untyped-def]
    """Pick ``option`` in the select box whose label starts with ``label``, as a user does:
    open it, type, take the first match."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    box.locator("input").click()
    page.keyboard.type(option)
    page.get_by_role("option").filter(has_text=option).first.click()


def wait_idle(page) -> None:  # type: ignore[no-untyped-def]
    """Until Streamlit has finished the rerun the last action started."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=TIMEOUT_MS)


# Where on the screen plotly drew the point with observation id ``id`` (customdata[0]).
POINT_ON_SCREEN = """(id) => {
  const gd = document.querySelector('.js-plotly-plot');
  for (const trace of gd._fullData) {
    if (!trace.customdata) continue;
    const k = trace.customdata.findIndex(row => row[0] === id);
    if (k < 0) continue;
    const xa = gd._fullLayout[trace.xaxis.replace('x', 'xaxis')];
    const ya = gd._fullLayout[trace.yaxis.replace('y', 'yaxis')];
    const box = gd.getBoundingClientRect();
    return [box.left + xa._offset + xa.l2p(trace.x[k]), box.top + ya._offset + ya.l2p(trace.y[k])];
  }
  return null;
}"""


def test_coil_map_choose_coil_click_defect_see_images(page, server: str, sample: Sample) -> None:  # type: ignore[no-untyped-def]
    final, ids = sample.info.shared_defect
    page.goto(server)
    page.get_by_role("heading", name="Coil map").wait_for()
    choose(page, "Coil (", final)
    wait_idle(page)
    page.locator('[data-testid="stMetricValue"]').filter(has_text=final).wait_for()
    page.locator(".js-plotly-plot .scatterlayer .point").first.wait_for()
    # Click the final inspection's sighting of a defect that every line saw, on the map.
    xy = page.evaluate(POINT_ON_SCREEN, ids[-1])
    assert xy, f"observation {ids[-1]} is not drawn on the coil map"
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    xy = page.evaluate(POINT_ON_SCREEN, ids[-1])
    page.mouse.click(*xy)
    wait_idle(page)
    page.get_by_role("heading", name=f"Defect #{ids[-1]}").wait_for()
    images = page.locator('[data-testid="stImage"] img')
    images.first.wait_for()
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stImage\"] img')]"
        ".filter(i => i.complete && i.naturalWidth > 0).length >= 3"
    )
    captions = page.locator('[data-testid="stImageCaption"]').all_inner_texts()
    stations = {c.split(" · ")[0] for c in captions}
    assert any(s.startswith("HSM") for s in stations), captions
    assert any(s.startswith("INSP") for s in stations), captions
    page.screenshot(path=str(ARTIFACTS / "coil-map.png"), full_page=True)


def test_history_filter_and_csv_download(page, server: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{server}/history")
    page.get_by_role("heading", name="Defect history").wait_for()
    classes = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Class").first
    classes.locator("input").click()
    page.keyboard.type("inclusion")
    page.get_by_role("option").filter(has_text="inclusion").first.click()
    page.keyboard.press("Escape")
    wait_idle(page)
    button = page.get_by_role("button", name="Download CSV")
    button.wait_for()
    with page.expect_download() as info:
        button.click()
    path = tmp_path / "history.csv"
    info.value.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert rows and {r["class"] for r in rows} == {"inclusion"}
    assert {"observation_id", "station", "grade", "x_mm", "y_mm"} <= set(rows[0])
    page.screenshot(path=str(ARTIFACTS / "defect-history.png"), full_page=True)


def test_genealogy_click_a_piece_opens_its_coil_map(page, server: str, sample: Sample) -> None:  # type: ignore[no-untyped-def]
    final, _ = sample.info.shared_defect
    hot = final.split("-")[0] + "-H1"
    page.goto(f"{server}/genealogy?piece={final}")
    page.get_by_role("heading", name="Genealogy").wait_for()
    page.locator(".js-plotly-plot .scatterlayer .point").first.wait_for()
    wait_idle(page)
    xy = page.evaluate(POINT_ON_SCREEN, hot)
    assert xy, f"{hot} is not drawn in the genealogy of {final}"
    page.mouse.click(*xy)
    page.get_by_role("heading", name="Coil map").wait_for()
    page.locator('[data-testid="stMetricValue"]').filter(has_text=hot).wait_for()
