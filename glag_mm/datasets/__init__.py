"""glag_mm.datasets."""
