"""Looper's shared library: the code the stage scripts in scripts/ import, in folders by
pipeline role (data, teacher, models, train, rollout, eval)."""
