"""The demo plant: a deterministic multi-line steel plant simulator with ground truth."""
