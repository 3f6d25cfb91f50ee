"""Defect history: what the stations found, by class, grade, line, station, period and position."""

from __future__ import annotations

import streamlit as st

from dashboard import data, ui
from dashboard.figures.history import defects_per_km, distribution_figure, trend_figure, weekly_counts

url = ui.db_url()
ui.require_schema(url)
st.title("Defect history")
opts = data.filter_options(url)
if not data.features(url).fusion_results:
    ui.notice(data.MISSING_FUSION)

with st.sidebar:
    st.subheader("Filters")
    classes = st.multiselect("Class", opts["classes"], key="h_classes")
    grades = st.multiselect("Grade", opts["grades"], key="h_grades")
    lines = st.multiselect("Line", opts["lines"], key="h_lines")
    stations = st.multiselect("Station", opts["stations"], key="h_stations")
    days = st.date_input("Observed between", value=(), key="h_days", format="YYYY-MM-DD")
    along = st.slider("Along the length (% from the head)", 0, 100, (0, 100), key="h_along")
    use_across = st.checkbox("Restrict across the width", key="h_use_across")
    across = st.slider(
        "Across the width (mm from the centreline, OS +)",
        -1200,
        1200,
        (-1200, 1200),
        10,
        key="h_across",
        disabled=not use_across,
    )

day_from, day_to = ui.date_pair(days)
flt = data.HistoryFilter(
    classes=tuple(classes),
    grades=tuple(grades),
    lines=tuple(lines),
    stations=tuple(stations),
    date_from=day_from,
    date_to=day_to,
    along_from=along[0] / 100,
    along_to=along[1] / 100,
    across_from_mm=float(across[0]) if use_across else None,
    across_to_mm=float(across[1]) if use_across else None,
)
frame = data.history(url, flt)
if frame.empty:
    ui.notice(
        "No defects match these filters."
        if opts["stations"]
        else "No observations in this database yet: run the ingestion jobs (`coilmap ingest`)."
    )
    st.stop()
if len(frame) >= data.HISTORY_MAX_ROWS:
    st.warning(
        f"Showing the first {data.HISTORY_MAX_ROWS:,} matching defects: narrow the filters for the rest."
    )

frame = frame.assign(week=data.week_start(frame["observed_at"]), along_pct=100 * frame["along"])
per_km = defects_per_km(weekly_counts(frame), data.inspected_km_per_week(url, flt))
m1, m2, m3, m4 = st.columns(4)
m1.metric("Defects", f"{len(frame):,}")
m2.metric("Coils", f"{frame['piece'].nunique():,}")
m3.metric("Weeks", f"{frame['week'].nunique():,}")
m4.metric("Top class", str(frame["class"].value_counts().index[0]))
st.plotly_chart(trend_figure(per_km), key="h_trend")
c1, c2 = st.columns(2)
c1.plotly_chart(
    distribution_figure(frame, "along_pct", "Along the length", "% of the piece length from the head"),
    key="h_along_fig",
)
c2.plotly_chart(
    distribution_figure(frame, "y_mm", "Across the width", "y mm from the centreline (OS +)"),
    key="h_across_fig",
)

st.subheader("Defects")
st.caption(
    "Positions are in the frame of the piece each station recorded (x from its head, y from the centreline)."
)
st.download_button(
    "Download CSV",
    data.history_csv(url, flt),
    file_name="defect-history.csv",
    mime="text/csv",
    key="h_csv",
    icon=":material/download:",
)
st.dataframe(
    frame.drop(columns=["week", "along_pct"]).head(5000),
    hide_index=True,
    key="h_table",
    column_config={
        "observed_at": st.column_config.DatetimeColumn("observed at (UTC)", format="YYYY-MM-DD HH:mm"),
        "x_mm": st.column_config.NumberColumn("x mm", format="%.0f"),
        "y_mm": st.column_config.NumberColumn("y mm", format="%.0f"),
        "along": st.column_config.NumberColumn("along", format="%.3f"),
        "station_confidence": st.column_config.NumberColumn("confidence", format="%.2f"),
        "anomaly_score": st.column_config.NumberColumn("anomaly", format="%.2f"),
    },
)
if len(frame) > 5000:
    st.caption(f"The table shows the first 5,000 of {len(frame):,}; the CSV holds them all.")
