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
        f"No training-set audit report at `{path}`: run `coilmap dataset audit` "
        f"(or point {AUDIT_REPORT_ENV} at its JSON)."
    )
else:
    try:
        report = data.audit_report(str(path), path.stat().st_mtime)
    except ValueError as exc:
        st.error(f"The audit report {path} is not valid JSON: {exc}")
        report = {}
    scalars, tables, other = tools.report_sections(report if isinstance(report, dict) else {"report": report})
    st.caption(f"From `{path}`")
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
search = tools.similar_search()
if search is None:
    ui.notice(
        "The similar-image search is not installed yet: it comes with the fusion area "
        f"(`{tools.SEARCH_MODULE}`; build its index with `coilmap dataset index`)."
    )
else:
    c1, c2 = st.columns([3, 1])
    query_id = c1.number_input(
        "Observation id of the query image", min_value=1, step=1, value=None, key="sim_id"
    )
    k = c2.number_input("How many", 1, 50, 8, key="sim_k")
    if query_id:
        found = data.observations_by_id(url, (int(query_id),))
        if found.empty or not found["image_ref"].iloc[0]:
            st.warning(f"Observation #{int(query_id)} has no image.")
        else:
            root = image_root(url)
            try:
                query = resolve_image(root, found["image_ref"].iloc[0])
                table = tools.as_table(search(query, k=int(k)))
            except (ImagePathError, OSError, ValueError) as exc:
                st.error(f"Search failed: {exc}")
            else:
                st.image(Image.open(query), caption=f"query #{int(query_id)}", width=160)
                st.dataframe(table, hide_index=True)
                refs = [r for r in table.get("image_ref", []) if isinstance(r, str)]
                cols = st.columns(4)
                for i, ref in enumerate(refs[:16]):
                    try:
                        cols[i % 4].image(Image.open(resolve_image(root, ref)), caption=ref)
                    except (ImagePathError, OSError) as exc:
                        cols[i % 4].warning(str(exc))
