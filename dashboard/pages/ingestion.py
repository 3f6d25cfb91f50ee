"""Ingestion: per line and station the last run, its lag and counts, and quarantined inputs."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dashboard import data, ui

LAG_WARN_S = 3600.0
REFRESH_S = 60

url = ui.db_url()
ui.require_schema(url)
st.title("Ingestion")
auto = st.toggle(
    "Refresh every minute", key="ing_auto", help="For a screen left open: the run table reloads by itself."
)


@st.fragment(run_every=REFRESH_S if auto else None)
def last_runs() -> None:
    if auto:
        data.ingestion_status.clear()
    st.caption(f"As of {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
    status = data.ingestion_status(url)
    if status.empty:
        ui.notice(
            "No ingestion runs recorded yet: start the jobs with `coilmap scheduler` or run `coilmap ingest`."
        )
        return

    failed = status[status["status"] == "failed"]
    late = status[pd.to_numeric(status["lag_s"], errors="coerce") > LAG_WARN_S]
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Stations and lines", len(status))
    m2.metric("Last run failed", len(failed))
    m3.metric(f"Lag over {LAG_WARN_S / 60:.0f} min", len(late))
    m4.metric("Quarantined in last runs", int(status["n_quarantined"].fillna(0).sum()))
    for r in failed.itertuples():
        errors = "; ".join(map(str, r.errors or []))
        st.error(f"Last run of {r.station or r.line} failed at {r.started_at}: {errors}")
    st.dataframe(
        status.assign(lag_min=pd.to_numeric(status["lag_s"], errors="coerce") / 60).drop(columns=["lag_s"]),
        hide_index=True,
        column_config={
            "lag_min": st.column_config.NumberColumn("lag (min)", format="%.1f"),
            "errors": st.column_config.ListColumn("errors"),
        },
        key="ing_status",
    )


last_runs()
status = data.ingestion_status(url)
if status.empty:
    st.stop()
backlog = data.file_backlog(url)
if not backlog.empty:
    st.subheader("Export files by state")
    st.dataframe(
        backlog.pivot_table(index="station", columns="state", values="files", fill_value=0),
        key="ing_backlog",
    )

st.subheader("Quarantined inputs")
c1, c2 = st.columns(2)
line = c1.selectbox(
    "Line", [None, *sorted(status["line"].dropna().unique())], format_func=lambda v: v or "all", key="q_line"
)
station = c2.selectbox(
    "Station",
    [None, *sorted(status["station"].dropna().unique())],
    format_func=lambda v: v or "all",
    key="q_station",
)
quarantine = data.quarantined(url, line, station)
if quarantine.empty:
    st.success("Nothing quarantined.")
else:
    st.dataframe(quarantine, hide_index=True, key="q_table")
    by = quarantine["kind"].fillna(quarantine["reason"]) if "kind" in quarantine else quarantine["reason"]
    st.caption("By kind: " + "; ".join(f"{n} × {r}" for r, n in by.value_counts().items()))
