"""The coil-map page's defect panel: every station's image of the selected defect side by side,
the anomaly heatmap overlay, the upstream evidence and the fused decision."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from PIL import Image

from dashboard import data
from dashboard.coil_view import CoilView, seen_together
from dashboard.images import ImagePathError, overlay_heatmap, resolve_image
from dashboard.settings import image_root
from dashboard.ui import notice

IMAGES_PER_ROW = 4


def show(url: str, view: CoilView, observation_id: int) -> None:
    obs = view.observations
    me = obs[obs["observation_id"] == observation_id]
    if me.empty:
        st.warning(f"Observation #{observation_id} is not on {view.piece_id}.")
        return
    r = me.iloc[0]
    st.subheader(
        f"Defect #{observation_id}: {r['class']} on the {r['side']} surface at "
        f"x {r['x_mm'] / 1000:,.2f} m, y {r['y_mm']:,.0f} mm"
    )
    decision = data.fusion_decision(url, observation_id)
    _decision(url, r, decision)
    c1, c2, c3 = st.columns(3)
    along = c1.number_input(
        "Match along (± mm in each station's frame)", 10.0, 5000.0, 150.0, 10.0, key="match_along"
    )
    across = c2.number_input("Match across (± mm)", 5.0, 1000.0, 40.0, 5.0, key="match_across")
    overlay = c3.toggle(
        "Anomaly heatmap overlay",
        value=True,
        key="heatmap_overlay",
        disabled=not data.features(url).heatmap_ref,
    )
    if not data.features(url).heatmap_ref:
        notice(data.MISSING_HEATMAP)
    together = seen_together(obs, observation_id, along, across, view.length_scale)
    evidence_ids = [
        int(e["observation_id"]) for e in (decision or {}).get("evidence", []) if e.get("observation_id")
    ]
    extra = obs[
        obs["observation_id"].isin(evidence_ids) & ~obs["observation_id"].isin(together["observation_id"])
    ]
    seen = pd.concat(
        [together, extra.assign(dx_mm=extra["x_mm"] - r["x_mm"], dy_mm=extra["y_mm"] - r["y_mm"])]
    )
    stored = data.observations_by_id(url, tuple(int(i) for i in seen["observation_id"]))
    st.markdown(
        f"**Seen by {seen['station'].nunique()} station(s)**, {len(seen)} observation(s) at this spot "
        "(oldest first):"
    )
    _images(
        url,
        stored.merge(seen[["observation_id", "dx_mm", "dy_mm", "status"]], on="observation_id"),
        overlay and data.features(url).heatmap_ref,
    )
    with st.expander("These observations as stored (each in its own piece's frame)"):
        st.dataframe(stored.drop(columns=["image_ref"]), hide_index=True)


def _decision(url: str, r: pd.Series, decision: dict | None) -> None:
    if not data.features(url).fusion_results:
        notice(data.MISSING_FUSION)
    elif decision is None:
        notice(
            f"Observation #{int(r['observation_id'])} has no fused decision yet: run `coilmap fuse apply`."
        )
    else:
        a, b, c = st.columns(3)
        a.metric("Fused class", str(decision.get("fused_class")))
        b.metric("Fused probability", f"{float(decision.get('fused_probability') or 0):.2f}")
        c.metric("Real-defect probability", f"{float(decision.get('real_probability') or 0):.2f}")
        st.caption(f"model {decision.get('model_version')} · decided {decision.get('created_at')}")
        if decision["evidence"]:
            st.markdown("**Upstream evidence used by the fused decision**")
            st.dataframe(pd.DataFrame(decision["evidence"]), hide_index=True)
        else:
            st.caption("No upstream station saw anything at this spot.")
    a, b, c, d = st.columns(4)
    a.metric("Station", f"{r['station']} ({r['line']})")
    b.metric("Station label", f"{r['station_label']} → {r['plant_class']}")
    c.metric(
        "Station confidence", "-" if pd.isna(r["station_confidence"]) else f"{r['station_confidence']:.2f}"
    )
    d.metric("Anomaly score", "-" if pd.isna(r["anomaly_score"]) else f"{r['anomaly_score']:.2f}")


def _images(url: str, rows: pd.DataFrame, overlay: bool) -> None:
    root = image_root(url)
    records = list(rows.itertuples())
    for start in range(0, len(records), IMAGES_PER_ROW):
        cols = st.columns(IMAGES_PER_ROW)
        for col, rec in zip(cols, records[start : start + IMAGES_PER_ROW], strict=False):
            with col:
                caption = (
                    f"{rec.station} · line {rec.line} · {rec.piece} · {rec.plant_class} "
                    f"({rec.station_label}) · Δx {rec.dx_mm:+.0f} mm · {rec.status}"
                )
                try:
                    img = Image.open(resolve_image(root, rec.image_ref))
                    heat_ref = getattr(rec, "heatmap_ref", None)
                    if overlay and isinstance(heat_ref, str) and heat_ref:
                        img = overlay_heatmap(img, Image.open(resolve_image(root, heat_ref)))
                    st.image(img, caption=caption, width="stretch")
                except (ImagePathError, OSError) as exc:
                    st.warning(f"{caption}: {exc}")
