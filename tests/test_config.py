"""Settings precedence: defaults < chatloom.toml < CHATLOOM_* environment < CLI flags."""

from __future__ import annotations

import pytest

from chatloom.config import DEFAULT_MODEL, get_settings
from chatloom.errors import ConfigError


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    """An empty environment and a chatloom.toml that the test writes."""
    for name in ("CHATLOOM_MODEL", "CHATLOOM_MAX_STEPS", "CHATLOOM_OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "chatloom.toml"
    monkeypatch.setenv("CHATLOOM_CONFIG", str(path))
    return path


def test_defaults_without_a_file(config_file):
    settings = get_settings()
    assert (settings.model, settings.max_steps) == (DEFAULT_MODEL, 8)


def test_the_file_overrides_the_defaults(config_file):
    config_file.write_text('model = "openai:gpt-4o-mini"\nmax_steps = 5\n')
    settings = get_settings()
    assert (settings.model, settings.max_steps) == ("openai:gpt-4o-mini", 5)


def test_the_chatloom_table_is_read_and_other_tables_ignored(config_file):
    config_file.write_text(
        '[chatloom]\nmodel = "fake:echo"\n\n[serve]\nport = 9000\n\n[mcp.servers.files]\ncommand = "x"\n'
    )
    assert get_settings().model == "fake:echo"


def test_top_level_settings_sit_beside_other_tables(config_file):
    config_file.write_text('model = "fake:echo"\n\n[memory]\nchunk = 3\n')
    assert get_settings().model == "fake:echo"


def test_the_environment_overrides_the_file(config_file, monkeypatch):
    config_file.write_text('model = "openai:gpt-4o-mini"\nmax_steps = 5\n')
    monkeypatch.setenv("CHATLOOM_MODEL", "fake:echo")
    settings = get_settings()
    assert (settings.model, settings.max_steps) == ("fake:echo", 5)


def test_flags_override_the_environment_and_unset_flags_do_not(config_file, monkeypatch):
    config_file.write_text("max_steps = 5\n")
    monkeypatch.setenv("CHATLOOM_MODEL", "fake:echo")
    settings = get_settings(model="openai:gpt-4o", max_steps=None)
    assert (settings.model, settings.max_steps) == ("openai:gpt-4o", 5)


def test_malformed_toml_is_a_config_error(config_file):
    config_file.write_text("model = [unclosed\n")
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        get_settings()
    assert str(config_file) in str(caught.value)


def test_an_unknown_setting_in_the_file_is_a_config_error(config_file):
    config_file.write_text('modle = "fake:echo"\n')
    with pytest.raises(ConfigError, match="modle"):
        get_settings()


def test_a_bad_value_in_the_file_is_a_config_error(config_file):
    config_file.write_text('max_steps = "many"\n')
    with pytest.raises(ConfigError, match="max_steps"):
        get_settings()
