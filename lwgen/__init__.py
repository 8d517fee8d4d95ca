"""lwgen: compact generative image models in JAX/Flax, shipped to the edge as INT8 TFLite."""

__version__ = "0.1.0"
