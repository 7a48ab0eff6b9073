"""Settings: built-in defaults < ./chatloom.toml < CHATLOOM_* environment < CLI flags.

>>> from chatloom.config import get_settings
>>> get_settings(model="fake:echo").model
'fake:echo'
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Mapping
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from chatloom.errors import ConfigError, DataDirError

DEFAULT_MODEL = "local:qwen2.5-coder-0.5b"
CONFIG_FILE = "chatloom.toml"


def _default_home() -> Path:
    import platformdirs  # only needed when CHATLOOM_HOME is unset

    return Path(platformdirs.user_data_dir("chatloom", appauthor=False))


class Settings(BaseSettings):
    """Runtime settings for chatloom. Every field can be set as ``CHATLOOM_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="CHATLOOM_", extra="forbid")

    home: Path | None = None
    """The data dir: models, conversation checkpoints and memory stores live here."""
    model: str = DEFAULT_MODEL
    """The chat model id, e.g. ``local:qwen2.5-coder-0.5b`` or ``openai:gpt-4o-mini``."""
    openai_base_url: str | None = None
    """An OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server) for ``openai:`` models."""
    memory_url: str | None = None
    """``http://host:port`` of a Chroma server; unset means an embedded store in the data dir."""
    checkpoint_url: str | None = None
    """A PostgreSQL DSN for conversation state; unset means SQLite in the data dir."""
    index_url: str | None = None
    """A PostgreSQL DSN for the knowledge index (chunk rows, file manifest, write lock), so that
    servers on several machines share one knowledge base with ``memory_url``'s Chroma server
    (which it needs); unset means SQLite in the data dir. It may be ``checkpoint_url``'s DSN."""
    web_search_url: str | None = None
    """Base URL of a SearxNG instance for the ``web_search`` tool; unset disables it."""
    max_steps: int = 8
    """The most model calls one turn may make before it is stopped."""
    max_question_chars: int = Field(default=100_000, ge=1)
    """The longest question (in characters) a turn accepts; longer ones are a clear error."""
    turn_lock_timeout: float = Field(default=600.0, ge=0)
    """Seconds a turn waits for another turn on the same thread to finish before failing."""
    max_tool_result_bytes: int = Field(default=1024 * 1024, ge=1024)
    """The most of one tool result (UTF-8 bytes) a turn keeps: the model sees, and the thread
    stores, that much and a marker saying what was cut (an 8 MiB result was stored whole)."""
    ingest_max_file_mb: float = Field(default=50.0, gt=0)
    """Files bigger than this (MiB) are skipped by ``chatloom ingest`` with a warning line."""
    mcp_separator: str = Field(default=".", pattern=r"^[._-]{1,2}$")
    """Between an MCP server's name and its tool's (``files.read_file``); OpenAI's API allows no
    dots in tool names, so use ``__`` with ``openai:`` models. Specs' tool_policy keeps ``server.tool``."""
    mcp_token_env: str = "CHATLOOM_MCP_TOKEN"
    """The environment variable holding the bearer token(s) ``chatloom mcp serve`` accepts over HTTP."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence, highest first: explicit arguments (CLI flags), env, chatloom.toml.
        return init_settings, env_settings, _ChatloomTomlSource(settings_cls)

    def data_dir(self) -> Path:
        """Return the data dir, creating it and checking that it is writable."""
        home = (self.home or _default_home()).expanduser()
        try:
            home.mkdir(parents=True, exist_ok=True)
            # A probe file of its own: with one shared name, two processes starting at once
            # deleted each other's probe and each reported the dir as not writable.
            with tempfile.NamedTemporaryFile(dir=home, prefix=".write-test-"):
                pass
        except OSError as exc:
            raise DataDirError(
                f"data dir {str(home)!r} is not writable ({exc.strerror or exc})",
                "set CHATLOOM_HOME to a writable directory",
            ) from None
        return home


class _ChatloomTomlSource(TomlConfigSettingsSource):
    """pydantic-settings' TOML source over ``$CHATLOOM_CONFIG`` (default ./chatloom.toml).

    It reads the ``[chatloom]`` table, or the top level when there is none, and turns a syntax
    error into a one-line :class:`ConfigError`.
    """

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls, toml_file=config_path())

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        try:
            data = super()._read_file(file_path)
        except tomllib.TOMLDecodeError as exc:
            raise _invalid_toml(file_path, exc) from None
        table = data.get("chatloom", data)
        # Other tables ([serve], [mcp.servers.NAME], [memory]) belong to other readers; they
        # are not Settings fields.
        return {k: v for k, v in table.items() if not isinstance(v, dict)}


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The chatloom.toml in use: ``$CHATLOOM_CONFIG``, else ./chatloom.toml."""
    return Path((os.environ if environ is None else environ).get("CHATLOOM_CONFIG", CONFIG_FILE))


def config_table(name: str, path: str | Path | None = None) -> dict[str, Any]:
    """Table ``name`` of chatloom.toml (``[name]``, or ``[chatloom.name]``), read by the parts
    that have settings of their own (``serve``, ``mcp``); {} when the file or the table is
    missing. A syntax error is a one-line :class:`ConfigError`.
    """
    file = Path(path) if path is not None else config_path()
    if not file.is_file():
        return {}
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise _invalid_toml(file, exc) from None
    return dict(data.get(name) or data.get("chatloom", {}).get(name) or {})


def _invalid_toml(path: Path | Traversable, exc: tomllib.TOMLDecodeError) -> ConfigError:
    return ConfigError(f"{str(path)!r} is not valid TOML: {exc}", "fix the syntax")


def data_dir(home: str | Path | None = None) -> Path:
    """``home`` when given (created if missing), else the configured data dir.

    The one place library code falls back to the configured data dir, for objects built without
    one (``LlamaCppChatModel(model_path=...)``, ``chatloom.models.install.locate(name)``). The
    Agent, the CLI and the servers always pass theirs.
    """
    if home is None:
        return get_settings().data_dir()
    path = Path(home).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def get_settings(**overrides: Any) -> Settings:
    """Load settings; ``overrides`` (e.g. from CLI flags) win over everything else.

    None-valued overrides are ignored so that unset CLI options don't mask the environment.
    """
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise ConfigError(
            f"setting {field!r}: {err['msg']} (got {err.get('input')!r})",
            f"fix it in {CONFIG_FILE} or the CHATLOOM_{field.upper()} variable",
        ) from None
