"""Detection: tiling, anomaly scorers, classifiers and workers (plain torch.nn)."""
