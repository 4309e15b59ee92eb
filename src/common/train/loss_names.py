"""The Phase C loss names, a constant module so that the config can check DPO_LOSS without importing
torch; src/common/train/losses.py implements them and re-exports the tuple as LOSSES."""

LOSSES = ("sigmoid", "ipo", "robust", "cal_dpo", "dr_dpo", "centered", "sft")
