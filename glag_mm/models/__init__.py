"""glag_mm.models."""
