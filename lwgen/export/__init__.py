"""Export of trained generators to edge bundles: jax2tf → TFLite conversion and quantization
(``convert``), bundle writing and verification (``bundle``), LiteRT inference (``runtime``) and
the static Edge TPU compatibility report (``edgetpu``).

Only ``convert`` imports TensorFlow (the one library package besides TFDS data loading that
does); the others need only LiteRT, so bundles can be loaded and run without it.
"""
