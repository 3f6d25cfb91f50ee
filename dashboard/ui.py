"""Widgets several pages share: the database URL, the schema guard and the coil picker.

The piece every page is about lives in ``st.session_state["piece"]`` (and in the ``?piece=``
query parameter, so a coil map can be bookmarked or sent to a colleague).
"""

from __future__ import annotations

from datetime import date

import streamlit as st

from coilmap.config import database_url
from dashboard import data

PIECE_KEY = "piece"


def db_url() -> str:
    """The coil model this dashboard reads (``COILMAP_DATABASE_URL`` or the SQLite default)."""
    return database_url()


def require_schema(url: str) -> None:
    """Stop the page with a clear message when the database has no coil model."""
    if not data.features(url).migrated:
        st.warning(
            "This database has no coil model yet: run `coilmap db upgrade` "
            "(then `coilmap track import` and the ingestion jobs) and reload."
        )
        st.stop()


def notice(message: str) -> None:
    st.info(message, icon=":material/info:")


def current_piece() -> str | None:
    piece = st.query_params.get(PIECE_KEY)
    if piece and st.session_state.get(PIECE_KEY) is None:
        st.session_state[PIECE_KEY] = piece
    return st.session_state.get(PIECE_KEY)


def open_coil_map(piece_id: str) -> None:
    """Show ``piece_id`` on the coil-map page (from the genealogy or the history page)."""
    st.session_state[PIECE_KEY] = piece_id
    st.session_state.pop("coil_pick", None)
    st.query_params[PIECE_KEY] = piece_id
    st.switch_page("pages/coil_map.py")


def first_customdata(point: dict) -> object:
    """``customdata[0]`` of a selected plotly point (a list, a scalar, or an object keyed by
    position when the figure shipped customdata as a typed array).

    >>> first_customdata({"customdata": [17.0, 0.5]}), first_customdata({"customdata": {"0": 17, "1": 0.5}})
    (17.0, 17)
    >>> first_customdata({"customdata": ["G0-C1"]}), first_customdata({"customdata": "G0-C1"})
    ('G0-C1', 'G0-C1')
    """
    data = point["customdata"]
    if isinstance(data, dict):
        data = [data[k] for k in sorted(data, key=int)]
    return data[0] if isinstance(data, list | tuple) else data


def piece_picker(url: str, *, final_only_default: bool = True) -> str | None:
    """Search (id or coil number, grade, line, date made) in the sidebar; the chosen piece."""
    options = data.filter_options(url)
    with st.sidebar:
        st.subheader("Find a coil")
        text = st.text_input("Coil id or number contains", key="coil_text")
        grade = st.selectbox(
            "Grade", [None, *options["grades"]], format_func=lambda v: v or "any", key="coil_grade"
        )
        line = st.selectbox(
            "Line", [None, *options["lines"]], format_func=lambda v: v or "any", key="coil_line"
        )
        days = st.date_input("Made between", value=(), key="coil_days", format="YYYY-MM-DD")
        final_only = st.checkbox("Final coils only", value=final_only_default, key="coil_final")
        made_from, made_to = date_pair(days)
        found = data.search_pieces(url, text, grade, line, made_from, made_to, final_only)
        current = current_piece()
        ids = list(found["piece_id"])
        if current and current not in ids:
            ids.insert(0, current)
        if not ids:
            st.caption("No coil matches the search.")
            return None
        if st.session_state.get("coil_pick") not in ids:
            st.session_state["coil_pick"] = current if current in ids else ids[0]
        info = found.set_index("piece_id")
        pick = st.selectbox(
            f"Coil ({len(found)} found)",
            ids,
            key="coil_pick",
            format_func=lambda p: _label(p, info),
        )
    if pick != st.session_state.get(PIECE_KEY):
        st.session_state[PIECE_KEY] = pick
        st.query_params[PIECE_KEY] = pick
    return pick


def _label(piece: str, info) -> str:  # type: ignore[no-untyped-def]
    if piece not in info.index:
        return piece
    r = info.loc[piece]
    made = f"{r['made_at']:%Y-%m-%d}" if r["made_at"] is not None and str(r["made_at"]) != "NaT" else "?"
    return f"{piece} · {r['grade'] or '-'} · {r['line'] or '-'} · {made}"


def date_pair(days: object) -> tuple[date | None, date | None]:
    if isinstance(days, tuple | list):
        if len(days) == 2:
            return days[0], days[1]
        if len(days) == 1:
            return days[0], days[0]
        return None, None
    if isinstance(days, date):
        return days, days
    return None, None
