"""Tracking: the shared coil model's genealogy and exact maps between piece frames."""
