"""glag_mm.evaluation."""
