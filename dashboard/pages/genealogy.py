"""Genealogy: from hot coils to final coils, the operations and their parameters."""

from __future__ import annotations

import json

import streamlit as st

from dashboard import data, ui
from dashboard.figures.genealogy import genealogy_figure

url = ui.db_url()
ui.require_schema(url)
st.title("Genealogy")
piece = ui.piece_picker(url, final_only_default=False)
if piece is None:
    ui.notice("No pieces in this database yet: import tracking events with `coilmap track import`.")
    st.stop()

nodes, edges = data.genealogy_graph(url, piece)
st.caption(
    f"{len(nodes)} pieces related to {piece} (ancestors and descendants), {len(edges)} edges. "
    "Hover an operation for its parameters; click a piece to open its coil map."
)
chart_key = f"genealogy_chart_{piece}"
event = st.plotly_chart(
    genealogy_figure(nodes, edges), key=chart_key, on_select="rerun", selection_mode=("points",)
)
clicked = [ui.first_customdata(p) for p in event.selection.points if p.get("customdata")] if event else []
if clicked:
    ui.open_coil_map(str(clicked[0]))

c1, c2 = st.columns([3, 1])
target = c1.selectbox(
    "Piece", list(nodes["piece_id"]), index=list(nodes["piece_id"]).index(piece), key="gen_target"
)
if c2.button("Open coil map", key="gen_open", width="stretch"):
    ui.open_coil_map(target)

st.subheader("Operations")
table = edges.assign(params=edges["params"].map(lambda p: json.dumps(p, default=str)))
st.dataframe(table, hide_index=True)
st.subheader("Pieces")
st.dataframe(nodes, hide_index=True)
