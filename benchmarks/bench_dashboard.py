"""Dashboard benchmark: the coil map of a coil with 100,000 observations.

``coilmap bench dashboard [--observations 100000] [--repeats 5] [--browser/--no-browser]``

Builds a sample coil model (SQLite in a temporary folder, or ``--url``) with one coil whose
hot coil and final coil carry ``--observations`` observations of three stations, then times,
cold caches each repeat:

1. ``query+map``: the coil-map query and the genealogy maps (``tracking.coil_map``);
2. ``coil view``: all the page's data (1 plus classes, severity, marks, cut lines, removed
   regions, roll-mark search);
3. ``figure``: building the plotly figure (WebGL scatter; density above 20,000 points);
4. ``to_json``: serialising it (what Streamlit ships to the browser), with its size;
5. ``page (AppTest)``: one full run of the coil-map page script;
6. ``browser ...``: a real server (its caches warm) and Debian's Chromium, from navigation to
   the coil map's WebGL canvas with its traces drawn, in a new browser profile and in a
   returning one, and the ingestion page (no figure) for scale (``--browser``, the default
   when Chromium is there); the same for a coil of ``--anchor-observations`` (5,000): what a
   new browser profile costs whatever the coil.

Prints p50/p95 per stage and which stage dominates.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _time(fn: Callable[[], object], repeats: int, before: Callable[[], None] | None = None) -> list[float]:
    out = []
    for _ in range(repeats):
        if before:
            before()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _browser_first_render(
    url: str, image_root: Path, piece: str, repeats: int, *, port: int = 8765
) -> dict[str, list[float]]:
    """Seconds from navigation to the coil map's WebGL canvas and drawn traces: in a new
    browser profile (downloads Streamlit's and plotly's scripts again) and in a returning one
    (scripts cached, a new Streamlit session all the same); and, for scale, the ingestion page
    (no figure) in the returning profile."""
    from playwright.sync_api import sync_playwright

    from dashboard.cli import server_env, serving

    drawn = (
        "() => document.querySelectorAll('.js-plotly-plot .gl-container canvas').length > 0 && "
        "document.querySelectorAll('.js-plotly-plot .heatmaplayer image, .js-plotly-plot .scatterlayer')"
        ".length > 0"
    )
    times: dict[str, list[float]] = {
        "browser, new profile": [],
        "browser, returning": [],
        "browser, ingestion page": [],
    }
    with serving(server_env(url, image_root), port) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
        )  # fmt: skip
        try:
            returning = browser.new_context(viewport={"width": 1600, "height": 1100}).new_page()
            # The first visit warms the server (imports, the engine, the coil view's cache).
            for i in range(repeats + 1):
                context = browser.new_context(viewport={"width": 1600, "height": 1100})
                page = context.new_page()
                t0 = time.perf_counter()
                page.goto(f"{base}/?piece={piece}")
                page.wait_for_function(drawn, timeout=120_000, polling=50)
                if i:
                    times["browser, new profile"].append(time.perf_counter() - t0)
                context.close()
                t0 = time.perf_counter()
                returning.goto(f"{base}/?piece={piece}")
                returning.wait_for_function(drawn, timeout=120_000, polling=50)
                if i:
                    times["browser, returning"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                returning.goto(f"{base}/ingestion")
                returning.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=120_000)
                if i:
                    times["browser, ingestion page"].append(time.perf_counter() - t0)
        finally:
            browser.close()
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="coilmap bench dashboard", description=__doc__.split("\n")[0])
    parser.add_argument("--observations", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--url", default=None, help="An empty database to build the sample in (default: SQLite)."
    )
    parser.add_argument("--browser", action=argparse.BooleanOptionalAction, default=CHROMIUM.exists())
    parser.add_argument(
        "--anchor-observations",
        type=int,
        default=5_000,
        help="observations of the small coil timed in the browser beside the big one (0: skip)",
    )
    args = parser.parse_args(argv)

    import logging
    import warnings

    logging.getLogger("streamlit").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    try:
        _run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args: argparse.Namespace, tmp: Path) -> None:
    from dashboard import data
    from dashboard.figures.coil_map import coil_map_figure
    from dashboard.sample_db import build

    url = args.url or f"sqlite:///{tmp / 'coilmap.sqlite'}"
    t0 = time.perf_counter()
    info = build(url, tmp / "images", groups=1, big_coil=args.observations)
    piece = info.big_coil
    print(f"sample: {info.n_observations:,} observations ({args.observations:,} on {piece} and its hot coil) "
          f"in {time.perf_counter() - t0:.1f} s; database {data.engine(url).dialect.name}")  # fmt: skip

    from coilmap.db import make_engine
    from tracking.coil_map import build_coil_map

    engine = make_engine(url)
    from sqlalchemy.orm import Session

    def query_map() -> None:
        with Session(engine) as session:
            build_coil_map(piece, session=session)

    stages: dict[str, list[float]] = {}
    stages["query+map"] = _time(query_map, args.repeats)
    stages["coil view"] = _time(lambda: data.coil_view(url, piece), args.repeats, before=data.coil_view.clear)
    view = data.coil_view(url, piece)
    fig_holder: list = []
    stages["figure"] = _time(
        lambda: fig_holder.append(coil_map_figure(view, view.observations)), args.repeats
    )
    fig, summary = fig_holder[-1]
    payload: list[str] = []
    stages["to_json"] = _time(lambda: payload.append(fig.to_json()), args.repeats)

    from streamlit.testing.v1 import AppTest

    os.environ["COILMAP_DATABASE_URL"] = url
    os.environ["COILMAP_IMAGE_ROOT"] = str(tmp / "images")
    page = str(Path(__file__).resolve().parents[1] / "dashboard" / "pages" / "coil_map.py")

    def apptest() -> None:
        at = AppTest.from_file(page, default_timeout=300)
        at.query_params["piece"] = piece
        at.run()
        if at.exception:
            raise RuntimeError(at.exception[0].message)

    stages["page (AppTest)"] = _time(apptest, args.repeats, before=data.coil_view.clear)
    if args.browser:
        stages.update(_browser_first_render(url, tmp / "images", piece, args.repeats))
        if args.anchor_observations:
            # The anchor: the same pages for a coil with few observations, so what a new browser
            # profile pays whatever the coil (the framework's scripts) shows apart from the data.
            small = tmp / "small"
            small.mkdir()
            small_url = f"sqlite:///{small / 'coilmap.sqlite'}"
            info = build(small_url, small / "images", groups=1, big_coil=args.anchor_observations)
            anchor = _browser_first_render(
                small_url, small / "images", info.big_coil, args.repeats, port=8766
            )
            label = f"{args.anchor_observations // 1000}k coil"
            stages[f"browser, new prof., {label}"] = anchor["browser, new profile"]
            stages[f"browser, returning, {label}"] = anchor["browser, returning"]
    engine.dispose()

    n = len(view.observations)
    print(f"coil map of {piece}: {n:,} observations in its frame; figure: "
          f"{sum(summary.n_points.values()):,} points, aggregated {summary.aggregated}, "
          f"JSON {len(payload[-1]) / 1e6:.1f} MB")  # fmt: skip
    print(f"{'stage':<30}{'p50 s':>9}{'p95 s':>9}   (n={args.repeats}, cold data caches)")
    for name, values in stages.items():
        print(f"{name:<30}{statistics.median(values):>9.3f}{_pct(values, 0.95):>9.3f}")
    inner = {
        k: statistics.median(v)
        for k, v in stages.items()
        if k in ("query+map", "coil view", "figure", "to_json")
    }
    top = max(inner, key=inner.get)  # type: ignore[arg-type]
    print(f"dominant server-side stage: {top} ({inner[top]:.3f} s of the page's data and figure work)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
