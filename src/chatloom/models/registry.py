"""One registry turns a model id such as ``openai:gpt-4o-mini`` into a langchain chat model.

Built-in schemes:

- ``openai:<model>``: OpenAI or any OpenAI-compatible server (``CHATLOOM_OPENAI_BASE_URL``);
- ``local:<name>``: a model from the local catalog (``chatloom models list``);
- ``gguf:<path>`` and ``hf:<dir>``: a model file or Hugging Face model directory;
- ``fake:<name>``: the scripted test model from :mod:`chatloom.testing`.

Plugins add schemes through the entry-point group ``chatloom.models``: the entry point's name
is the scheme and its value either a ``BaseChatModel`` subclass (a class with two methods is a
whole backend) or a ``factory(name: str, **options) -> BaseChatModel``. A class gets the part
after the colon as its ``model`` (or ``model_name``) field when it declares one, and the options
as keywords. A factory or class that declares ``settings`` also receives the
:class:`chatloom.config.Settings`. Discovery, caching and load errors are
:mod:`chatloom.plugins`', so a broken plugin reads the same here as in ``chatloom plugins list``.

Plugins are imported only when their scheme is used, so importing this module is cheap.

>>> from chatloom.models import resolve_model
>>> resolve_model("fake:echo").invoke("hi").content
'You said: hi'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from chatloom import plugins
from chatloom.errors import ModelError, ModelNotFound, PluginError, install_hint

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.language_models import BaseChatModel
    from pydantic import BaseModel

__all__ = ["BUILTIN_SCHEMES", "ENTRY_POINT_GROUP", "known_schemes", "resolve_model"]

ENTRY_POINT_GROUP = "chatloom.models"

BUILTIN_SCHEMES: dict[str, str] = {
    "openai": "chatloom.models.openai_backend:create_openai_model",
    "local": "chatloom.models.local:create_local_model",
    "gguf": "chatloom.models.local:create_gguf_model",
    "hf": "chatloom.models.local:create_hf_model",
    "fake": "chatloom.testing:create_fake_model",
}
_EXTRA = {"local": "local", "gguf": "local", "hf": "local"}  # the extra each built-in scheme needs


def resolve_model(model_id: str | BaseChatModel, **options: Any) -> BaseChatModel:
    """Return the chat model named by ``model_id``; a model object is returned as it is.

    ``options`` go to the backend factory (e.g. ``base_url``, ``timeout``, ``temperature``);
    ``settings`` (default: the configured ones) is passed only to factories that declare it. A bare name is tried as a local
    catalog entry, then as a ``.gguf`` file or a model directory.

    >>> resolve_model("fake:echo").invoke("ping").content
    'You said: ping'
    """
    if not isinstance(model_id, str):
        if hasattr(model_id, "invoke"):
            return model_id
        raise ModelNotFound(
            f"model {model_id!r} is neither a model id nor a chat model",
            "pass an id like 'openai:gpt-4o-mini' or a langchain chat model",
        )
    model_id = model_id.strip()
    scheme, sep, name = model_id.partition(":")
    if not sep or (len(scheme) == 1 and Path(model_id).exists()):  # bare name or C:\ path
        scheme, name = _guess_scheme(model_id)
    scheme = scheme.lower()
    kwargs = dict(options)
    settings = kwargs.pop("settings", None)
    if settings is None:  # the entry point for models: the configured settings unless given
        from chatloom.config import get_settings

        settings = get_settings()
    if scheme in BUILTIN_SCHEMES:
        factory = _builtin_factory(scheme, model_id)
        return factory(name, **kwargs, **plugins.declared_keywords(factory, settings=settings))
    plugin = _plugin(scheme)
    if plugin is None:
        raise ModelNotFound(f"unknown model scheme {scheme!r} in {model_id!r}", _known_hint())
    factory = plugin.load()  # a broken plugin: the PluginError `chatloom plugins list --check` shows
    if not callable(factory):
        raise PluginError(
            f"model plugin {plugin.label} ({plugin.value}) is not callable",
            "its entry point must name a BaseChatModel class or a factory(name, **options)",
        )
    kwargs.update(plugins.declared_keywords(factory, settings=settings))
    args: tuple[str, ...] = (name,)
    if _is_pydantic_class(factory):  # BaseModel.__init__ takes keywords only
        args = ()
        keyword = _model_name_keyword(factory)
        if keyword is not None:
            kwargs[keyword] = name
    return plugins.create(plugin, "model", repr(model_id), factory, *args, **kwargs)


def known_schemes() -> list[str]:
    """Built-in schemes followed by the schemes that installed plugins add."""
    added = [name for name in plugins.discover(ENTRY_POINT_GROUP) if name not in BUILTIN_SCHEMES]
    return [*BUILTIN_SCHEMES, *sorted(added)]


# -- internals ---------------------------------------------------------------------------------


def _guess_scheme(model_id: str) -> tuple[str, str]:
    if model_id in _catalog_names():
        return "local", model_id
    path = Path(model_id).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return "gguf", model_id
    if path.is_dir() and (path / "config.json").is_file():
        return "hf", model_id
    raise ModelNotFound(f"unknown model id {model_id!r}", _known_hint())


def _builtin_factory(scheme: str, model_id: str) -> Callable[..., BaseChatModel]:
    module_name, _, attr = BUILTIN_SCHEMES[scheme].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if missing.startswith("chatloom"):
            raise ModelError(
                f"the {scheme!r} backend is not available in this chatloom build ({missing!r} is missing)",
                "reinstall chatloom, or use another model id",
            ) from None
        raise ModelError(
            f"model {model_id!r} needs the Python package {missing!r}",
            install_hint(_EXTRA[scheme], missing) if scheme in _EXTRA else f"pip install {missing}",
        ) from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise ModelError(
            f"the {scheme!r} backend is not available ({module_name}.{attr} is missing)",
            "reinstall chatloom, or use another model id",
        )
    return factory


def _plugin(scheme: str) -> plugins.Plugin | None:
    """The ``chatloom.models`` entry point for ``scheme``; schemes match case-insensitively."""
    return next((p for name, p in plugins.discover(ENTRY_POINT_GROUP).items() if name.lower() == scheme), None)


def _is_pydantic_class(factory: object) -> TypeGuard[type[BaseModel]]:
    # A BaseChatModel subclass is a pydantic model, whose __init__ rejects positional arguments.
    from pydantic import BaseModel

    return isinstance(factory, type) and issubclass(factory, BaseModel)


# The fields a chat model class names its model with (ChatOpenAI: model_name, alias "model").
_MODEL_NAME_FIELDS = ("model", "model_name")


def _model_name_keyword(model_class: type[BaseModel]) -> str | None:
    """The keyword that sets ``model_class``'s model name, or None when it declares no such field."""
    for field, info in model_class.model_fields.items():
        keyword = info.alias or field
        if field in _MODEL_NAME_FIELDS or keyword in _MODEL_NAME_FIELDS:
            return keyword
    return None


def _catalog_names() -> list[str]:
    try:
        from chatloom.models.catalog import CATALOG
    except Exception:  # noqa: BLE001 - the catalog is optional here
        return []
    return list(CATALOG)


def _known_hint() -> str:
    schemes = ", ".join(f"{s}:" for s in known_schemes())
    names = ", ".join(f"local:{n}" for n in _catalog_names())
    hint = f"known schemes: {schemes}"
    if names:
        hint += f"; catalog models: {names}"
    return hint + " (e.g. openai:gpt-4o-mini)"
