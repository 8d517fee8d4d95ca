"""lwgen: compact generative image models in JAX/Flax, shipped to the edge as INT8 TFLite."""

from lwgen.config_files import load_config

__version__ = "0.1.0"

__all__ = ["__version__", "load_config"]
