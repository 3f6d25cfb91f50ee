"""Plotly figures built by pure functions of data frames: no streamlit, no SQL (unit-tested)."""
