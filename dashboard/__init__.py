"""Dashboard: the Streamlit coil map and defect history."""
