"""Stages 02 and 07: the student's drafts, rollouts spread over arms by a bandit, their scores,
the self-reward judge, preference pairs and the rollout report."""
