"""Data tools: the training-set audit report and the similar-image search of the fusion area."""

from __future__ import annotations

import streamlit as st
from PIL import Image

from dashboard import data, tools, ui
from dashboard.images import ImagePathError, resolve_image
from dashboard.settings import AUDIT_REPORT_ENV, audit_report_path, image_root

url = ui.db_url()
st.title("Data tools")

st.header("Training-set audit")
path = audit_report_path(url)
if not path.is_file():
    ui.notice(
        f"No training-set audit report at `{path}`: run `coilmap dataset audit SOURCE --json {path}` "
        f"(or point {AUDIT_REPORT_ENV} at its JSON)."
    )
else:
    try:
        report = data.audit_report(str(path), path.stat().st_mtime)
    except ValueError as exc:
        st.error(f"The audit report {path} is not valid JSON: {exc}")
        report = {}
    report = report if isinstance(report, dict) else {"report": report}
    st.caption(f"From `{path}`" + (f", made {report['generated_at']}" if report.get("generated_at") else ""))
    leakage = report.get("leakage") or {}
    verdicts = {k: v.get("verdict") for k, v in leakage.items() if isinstance(v, dict) and v.get("verdict")}
    for name, verdict in verdicts.items():
        shown = f"Leakage alarm ({name.replace('_', ' ')}): **{verdict}**"
        (st.error if verdict == "contaminated" else st.warning if verdict == "suspicious" else st.success)(
            shown
        )
    for finding in report.get("findings") or []:
        st.markdown(f"- {finding}")
    scalars, tables, other = tools.report_sections(
        {k: v for k, v in report.items() if k not in ("findings", "generated_at")}
    )
    cols = st.columns(max(1, min(4, len(scalars))))
    for i, (key, value) in enumerate(scalars.items()):
        cols[i % len(cols)].metric(key.replace("_", " "), str(value))
    for key, table in tables.items():
        st.subheader(key.replace("_", " "))
        st.dataframe(table, hide_index=True)
    for key, value in other.items():
        with st.expander(key.replace("_", " ")):
            st.json(value)

st.header("Similar-image search")
root = image_root(url)
folder = tools.search_index_dir(root)
if not tools.search_available():
    ui.notice(
        "The similar-image search is not installed: it comes with the fusion area (`fusion.search`, faiss)."
    )
elif not (folder / "index.json").is_file():
    ui.notice(
        f"No similar-image index at `{folder}`: run `coilmap dataset index db --out {folder}` "
        f"(or point {tools.SEARCH_INDEX_ENV} at an index folder)."
    )
else:
    ui.require_schema(url)
    index, info = data.search_index(str(folder), (folder / "index.json").stat().st_mtime)
    st.caption(f"Index `{folder}`: {len(index):,} images, embedder {info.get('embedder')}, {index.kind_}.")
    opts = data.filter_options(url)
    c1, c2 = st.columns([3, 1])
    query_id = c1.number_input(
        "Observation id of the query image", min_value=1, step=1, value=None, key="sim_id"
    )
    k = c2.number_input("How many", 1, 100, 12, key="sim_k")
    f1, f2, f3, f4 = st.columns(4)
    classes = f1.multiselect("Class", opts["classes"], key="sim_classes")
    grades = f2.multiselect("Grade", opts["grades"], key="sim_grades")
    lines = f3.multiselect("Line", opts["lines"], key="sim_lines")
    stations = f4.multiselect("Station", opts["stations"], key="sim_stations")
    if query_id:
        found = data.observations_by_id(url, (int(query_id),))
        if found.empty:
            st.warning(f"No observation #{int(query_id)} in this database.")
        else:
            try:
                ref = found["image_ref"].iloc[0]
                image = resolve_image(root, ref) if isinstance(ref, str) and ref else None
                query, exclude = tools.query_vector(index, info, int(query_id), image)
                hits = tools.search(
                    index, query, exclude, int(k), classes=tuple(classes), grades=tuple(grades),
                    lines=tuple(lines), stations=tuple(stations),
                )  # fmt: skip
            except (ImagePathError, OSError, ValueError) as exc:
                st.error(f"Search failed: {exc}")
            else:
                if image is not None:
                    st.image(Image.open(image), caption=f"query #{int(query_id)}", width=160)
                st.dataframe(hits, hide_index=True, key="sim_hits")
                cols = st.columns(6)
                for i, hit in enumerate(hits.head(24).itertuples()):
                    with cols[i % 6]:
                        try:
                            st.image(
                                Image.open(tools.hit_image(root, hit.path)),
                                caption=f"{hit.rank}. {hit.label} · {hit.score:.2f}",
                            )
                        except (ImagePathError, OSError) as exc:
                            st.caption(f"{hit.rank}. {hit.label}: {exc}")
