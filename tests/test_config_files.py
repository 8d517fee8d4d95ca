"""Tests for lwgen.load_config: config files with arguments and overrides, and its user errors."""

import glob
import os
import textwrap

import ml_collections
import pytest

import lwgen
from lwgen.errors import ConfigError, MissingFileError
from tests.conftest import ROOT

CONFIG = textwrap.dedent(
    """
    import ml_collections


    def get_config(size="small"):
        config = ml_collections.ConfigDict()
        config.size = size
        config.num_train_steps = 100
        config.learning_rate = 1e-3
        config.data = ml_collections.ConfigDict({"source": "digits", "path": None})
        return config
    """
)


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "exp.py"
    path.write_text(CONFIG)
    return str(path)


def test_loads_get_config_with_its_argument(config_file):
    config = lwgen.load_config(config_file)
    assert isinstance(config, ml_collections.ConfigDict)
    assert (config.size, config.num_train_steps) == ("small", 100)
    assert lwgen.load_config(f"{config_file}:large:x").size == "large:x"  # split at the first ':'


def test_overrides_set_nested_entries_and_the_result_is_locked(config_file):
    overrides = {"num_train_steps": 5, "learning_rate": 1, "data.path": "runs/set"}
    config = lwgen.load_config(config_file, overrides)
    assert (config.num_train_steps, config.data.path) == (5, "runs/set")
    assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
    assert lwgen.load_config(config_file).num_train_steps == 100  # every call loads afresh
    config.num_train_steps = 6
    with pytest.raises(AttributeError):
        config.new_entry = 1


@pytest.mark.parametrize(
    "key, message",
    [
        ("num_train_step", "the config has no entry 'num_train_step'"),
        ("data.sourse", "the config has no entry 'data.sourse'"),
        ("model.width", "the config has no entry 'model'"),
        ("size.x", "config entry 'size' is not a group"),
    ],
)
def test_an_unknown_override_key_is_a_config_error_naming_it(config_file, key, message):
    with pytest.raises(ConfigError, match=f"override '{key}': {message}"):
        lwgen.load_config(config_file, {key: 1})


def test_an_override_of_the_wrong_type_is_a_config_error(config_file):
    with pytest.raises(ConfigError, match="override 'num_train_steps'"):
        lwgen.load_config(config_file, {"num_train_steps": "many"})


def test_a_missing_file_is_a_missing_file_error(tmp_path):
    with pytest.raises(MissingFileError, match="nope.py"):
        lwgen.load_config(str(tmp_path / "nope.py:arg"))


def test_a_file_without_get_config_is_a_config_error(tmp_path):
    path = tmp_path / "empty.py"
    path.write_text("CONFIG = {}\n")
    with pytest.raises(ConfigError, match="defines no get_config"):
        lwgen.load_config(str(path))
    path.write_text("def get_config():\n    return {'steps': 1}\n")
    with pytest.raises(ConfigError, match="must return an ml_collections.ConfigDict, got dict"):
        lwgen.load_config(str(path))


@pytest.mark.parametrize(
    "path", sorted(glob.glob(os.path.join(ROOT, "configs", "*.py"))), ids=os.path.basename
)
def test_every_experiment_config_loads(path):
    config = lwgen.load_config(path, {"num_train_steps": 1})
    assert config.num_train_steps == 1 and config.model.family
