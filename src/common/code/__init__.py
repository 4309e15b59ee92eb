"""Running model-written programs against unit tests."""
