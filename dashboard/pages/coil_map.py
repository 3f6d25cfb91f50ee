"""Coil map: everything every station saw on one coil and its ancestors, in the coil's frame."""

from __future__ import annotations

import streamlit as st

from dashboard import data, defect_detail, ui
from dashboard.coil_view import filter_observations
from dashboard.figures.coil_map import MAX_POINTS, coil_map_figure

url = ui.db_url()
ui.require_schema(url)
st.title("Coil map")
piece = ui.piece_picker(url)
if piece is None:
    ui.notice(
        "No coils in this database yet: import tracking events (`coilmap track import`) and run ingestion."
    )
    st.stop()

view = data.coil_view(url, piece)
feats = data.features(url)
obs = view.observations
kept = int((obs["status"] == "kept").sum()) if len(obs) else 0
cols = st.columns(6)
cols[0].metric("Coil", piece)
cols[1].metric("Length", f"{view.length_mm / 1000:,.1f} m")
cols[2].metric("Width", f"{view.width_mm:,.0f} mm")
cols[3].metric("Grade · line", f"{view.grade or '-'} · {view.line or '-'}")
cols[4].metric("Observations on the coil", f"{kept:,}")
cols[5].metric("On removed material", f"{len(obs) - kept:,}")
st.caption(f"Ancestors: {', '.join(view.ancestors) or 'none'}")
if not feats.fusion_results:
    ui.notice(data.MISSING_FUSION)
if not data.roll_marks_available():
    ui.notice(data.MISSING_ROLL_MARKS)
elif view.roll_marks:
    st.caption(
        "Roll marks: "
        + "; ".join(
            f"{r['class']} on the {r['side']} surface ({', '.join(r['stations'])}), {len(r['x_mm'])} marks, "
            f"period {r['period_here_mm']:,.0f} mm here, {r['period_mm']:,.0f} mm on {r['frame']} "
            f"(p = {r['p_value']:.2f})"
            for r in view.roll_marks
        )
    )
if data.roll_marks_available() and view.roll_marks_skipped:
    st.caption(
        "Roll-mark search not run for "
        + ", ".join(f"{r['class']} on the {r['side']} surface ({r['n']:,})" for r in view.roll_marks_skipped)
        + f": more than {data.ROLL_MARK_MAX_GROUP:,} observations in one class and surface."
    )

f1, f2, f3, f4 = st.columns([3, 3, 2, 2])
classes = f1.multiselect("Class", sorted(obs["class"].unique()) if len(obs) else [], key="cm_classes")
stations = f2.multiselect(
    "Station", sorted(obs["station"].dropna().unique()) if len(obs) else [], key="cm_stations"
)
side = f3.radio("Side", ["both", "top", "bottom"], horizontal=True, key="cm_side")
min_sev = f4.slider(
    "Minimum severity",
    0.0,
    1.0,
    0.0,
    0.05,
    key="cm_severity",
    help="Fused real-defect probability when fusion has run, else anomaly score, else confidence.",
)
g1, g2 = st.columns([1, 4])
show_removed = g1.toggle("Show removed material", value=True, key="cm_removed")
margin_m = 0.05 * view.length_mm / 1000
window = g2.slider(
    "Length window (m)",
    -round(margin_m, 1),
    round(view.length_mm / 1000 + margin_m, 1),
    (-round(margin_m, 1), round(view.length_mm / 1000 + margin_m, 1)),
    key=f"cm_window_{piece}",
)
shown = filter_observations(
    obs, classes=classes, stations=stations, side=side, min_severity=min_sev, show_removed=show_removed
)

chart_key = f"coil_map_chart_{piece}"
points = (st.session_state.get(chart_key) or {}).get("selection", {}).get("points", [])
clicked = [int(ui.first_customdata(p)) for p in points if p.get("customdata") is not None]
if clicked and clicked[0] != st.session_state.get("cm_last_click"):
    st.session_state["cm_last_click"] = clicked[0]
    st.session_state["cm_defect"] = int(clicked[0])
    st.session_state["cm_defect_pick"] = int(clicked[0])
selected = st.session_state.get("cm_defect")
if selected is not None and selected not in set(obs["observation_id"]):
    selected = None

fig, summary = coil_map_figure(
    view, shown, x_range_mm=(window[0] * 1000, window[1] * 1000), selected_id=selected
)
st.plotly_chart(
    fig, key=chart_key, on_select="rerun", selection_mode=("points",), config={"scrollZoom": True}
)
for s in ("top", "bottom"):
    if summary.aggregated.get(s):
        st.caption(
            f"{s}: {summary.n_in_window[s]:,} observations in the window, more than {MAX_POINTS:,}: "
            f"showing their density and the {summary.n_points[s]:,} most severe. Narrow the length window "
            "to see each one."
        )

lo_mm, hi_mm = window[0] * 1000, window[1] * 1000
in_window = shown[(shown["x_mm"] >= lo_mm) & (shown["x_mm"] <= hi_mm)]
ranked = in_window.sort_values("severity", ascending=False).head(500)
choices = [None, *ranked["observation_id"].astype(int)]
if selected is not None and selected not in choices:
    choices.insert(1, selected)
labels = obs.set_index("observation_id")
if st.session_state.get("cm_defect_pick") not in choices:
    st.session_state["cm_defect_pick"] = selected


def _picked() -> None:
    st.session_state["cm_defect"] = st.session_state["cm_defect_pick"]


pick = st.selectbox(
    "Defect (click one on the map, or pick among the 500 most severe shown)",
    choices,
    key="cm_defect_pick",
    on_change=_picked,
    format_func=lambda i: (
        "—"
        if i is None
        else (
            f"#{i} · {labels.at[i, 'class']} · {labels.at[i, 'station']} · {labels.at[i, 'side']} · "
            f"x {labels.at[i, 'x_mm'] / 1000:,.2f} m · severity {labels.at[i, 'severity']:.2f}"
        )
    ),
)
if pick is not None:
    defect_detail.show(url, view, int(pick))
