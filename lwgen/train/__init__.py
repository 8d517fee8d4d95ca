"""Training: train-state pytrees, pure per-device steps, the one training loop, checkpoints."""
