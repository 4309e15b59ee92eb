"""Running model-written programs."""
