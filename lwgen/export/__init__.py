"""Export of any family's models to edge bundles (format 2).

``spec`` (what a family hands over: a pure function, named inputs and outputs, sample inputs),
``convert`` (jax2tf → TFLite, quantization, verification against JAX), ``metadata`` (the
``bundle.json`` schema, validation and verified reading), ``bundle`` (writing bundles, exporting a
workdir through the family registry), ``runtime`` (LiteRT inference) and ``edgetpu`` (the static
Edge TPU report). Imports go one way: bundle → convert → runtime → metadata.

Only ``convert`` imports TensorFlow (the one library package besides TFDS data loading that
does); the others need only LiteRT, so bundles can be loaded and run without it.
"""
