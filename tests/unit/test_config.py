"""Strict TOML config: unknown keys, wrong types and missing keys name the key and the file."""
from dataclasses import dataclass, FrozenInstanceError

import pytest

from pipeline import config
from pipeline.config import ConfigError, PipelineConfig


def test_defaults_load(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("")
    cfg = config.load(p)
    assert isinstance(cfg, PipelineConfig)
    assert cfg.ring.capacity == 1 << 16
    with pytest.raises(FrozenInstanceError):
        cfg.ring.capacity = 8  # type: ignore[misc]


def test_values_load(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[ring]\nname = "x"\ncapacity = 1024\n[reader]\nwait = "blocking"\n')
    cfg = config.load(p)
    assert cfg.ring.name == "x" and cfg.ring.capacity == 1024 and cfg.reader.wait == "blocking"


def test_unknown_key_names_key_and_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[ring]\ncapacty = 1024\n")
    with pytest.raises(ConfigError, match=r"bad\.toml.*ring\.capacty"):
        config.load(p)


def test_unknown_section(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[rnig]\n")
    with pytest.raises(ConfigError, match=r"bad\.toml.*'rnig'"):
        config.load(p)


def test_wrong_type_names_key(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[ring]\ncapacity = "big"\n')
    with pytest.raises(ConfigError, match=r"bad\.toml.*'ring\.capacity' must be an integer"):
        config.load(p)


def test_bool_is_not_int():
    with pytest.raises(ConfigError, match="ring.capacity"):
        config.loads("[ring]\ncapacity = true\n")


def test_literal_checked():
    with pytest.raises(ConfigError, match="reader.wait.*one of"):
        config.loads('[reader]\nwait = "spin"\n')


def test_validation_error_names_file_and_section():
    with pytest.raises(ConfigError, match=r"<string>.*\[ring\].*power of two"):
        config.loads("[ring]\ncapacity = 1000\n")


def test_missing_required_key():
    @dataclass(frozen=True)
    class Need:
        host: str
        port: int = 1

    with pytest.raises(ConfigError, match="missing required key 'host'"):
        config.from_dict(Need, {"port": 2}, source="f.toml")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        config.load(tmp_path / "nope.toml")


def test_list_item_types():
    with pytest.raises(ConfigError, match=r"bus_demo\.reader_cores\[1\]"):
        config.loads('[bus_demo]\nreader_cores = [1, "a"]\n')
