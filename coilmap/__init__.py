"""coilmap: multi-line material tracking and defect fusion for steel plants."""

__version__ = "0.1.0"
