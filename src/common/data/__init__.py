"""Stage 01 and the data every stage reads: tasks, loading, the synthetic tasks, sampling, answer
grading, the one prompt module, training records and teacher validation."""
