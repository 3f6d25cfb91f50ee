"""The coilmap dashboard: ``coilmap dashboard`` runs ``streamlit run`` on this file.

One small file per page under ``pages/``; data access in ``dashboard/data.py``; figures in
``dashboard/figures/``.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="coilmap", page_icon=":material/grid_on:", layout="wide")

PAGES = [
    st.Page("pages/coil_map.py", title="Coil map", icon=":material/map:", default=True),
    st.Page("pages/genealogy.py", title="Genealogy", icon=":material/account_tree:"),
    st.Page("pages/history.py", title="Defect history", icon=":material/query_stats:"),
    st.Page("pages/ingestion.py", title="Ingestion", icon=":material/input:"),
    st.Page("pages/data_tools.py", title="Data tools", icon=":material/dataset:"),
]
st.navigation(PAGES).run()
