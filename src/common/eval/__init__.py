"""Stage 09: evaluating checkpoints, statistics, draft attribution, the clarifying-question
judge, and the report."""
