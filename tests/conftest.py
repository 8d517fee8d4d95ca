"""Shared test fixtures: a tiny digits GAN config that trains in seconds."""

import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


@pytest.fixture
def tiny_config():
    from tests.tiny import tiny_gan_config

    return tiny_gan_config()


def load_script(path, name: str):
    """The standalone script at ``path`` (``export/pi_infer.py``, ...) imported as module ``name``
    by path, as it runs on a device (registered in ``sys.modules`` for its dataclasses)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
