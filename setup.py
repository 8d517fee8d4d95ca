"""Installs the lwgen library (the only package; configs/, launch/, export/ and bench/ run from the repo)."""

from setuptools import find_packages, setup

setup(
    name="lwgen",
    version="0.1.0",
    description="Compact generative image models in JAX/Flax, exported as INT8 TFLite for the edge.",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["lwgen", "lwgen.*"]),
    install_requires=[
        "jax==0.10.2",
        "jaxlib==0.10.2",
        "flax==0.12.8",
        "optax==0.2.8",
        "orbax-checkpoint==0.12.8",
        "ml-collections==1.1.0",
        "absl-py==2.5.1",
        "clu==0.0.12",
        "tensorboard==2.21.0",
        "tensorflow-cpu==2.21.0",
        "tensorflow-datasets==4.9.10",
        "ai-edge-litert==2.3.0",
        "scikit-learn==1.9.1",
        "scikit-image==0.26.0",
        "scipy==1.17.1",
        "matplotlib==3.11.2",
        "numpy==2.4.6",
        "Pillow==13.0.0",
        "tqdm==4.70.1",
        "safetensors==0.7.0",
        "tokenizers==0.22.1",
    ],
    extras_require={
        "test": ["pytest==9.2.0", "ruff==0.17.6"],
        "bench": ["torch==2.13.0"],
        "llm": ["transformers==4.57.3"],
    },
)
