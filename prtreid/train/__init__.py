"""Training: the multi-task loop (no Ray inside), checkpoints and evaluation of a crop store."""
