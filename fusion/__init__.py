"""Fusion: upstream evidence for downstream classification, and the data tools."""
