"""Evaluation: the judge (`judge`), metrics (`metrics`), sampler scoring (`evaluate`), `profile`."""
