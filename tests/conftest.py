"""Shared test fixtures: a tiny digits GAN config that trains in seconds."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


@pytest.fixture
def tiny_config():
    from tests.tiny import tiny_gan_config

    return tiny_gan_config()
