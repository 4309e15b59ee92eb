"""Stages 05, 06 and 08: the shared trainer setup, SFT (Phases A and B), DPO (Phase C) and its
losses."""
