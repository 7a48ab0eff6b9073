"""One registry turns a model id such as ``openai:gpt-4o-mini`` into a langchain chat model.

Built-in schemes:

- ``openai:<model>``: OpenAI or any OpenAI-compatible server (``CHATLOOM_OPENAI_BASE_URL``);
- ``local:<name>``: a model from the local catalog (``chatloom models list``);
- ``gguf:<path>`` and ``hf:<dir>``: a model file or Hugging Face model directory;
- ``fake:<name>``: the scripted test model from :mod:`chatloom.testing`.

Plugins add schemes through the entry-point group ``chatloom.models``: the entry point's name
is the scheme and its value a ``factory(name: str, **options) -> BaseChatModel``. A factory
that declares a ``settings`` parameter also receives the :class:`chatloom.config.Settings`.

Factories are imported only when their scheme is used, so importing this module is cheap.

>>> from chatloom.models import resolve_model
>>> resolve_model("fake:echo").invoke("hi").content
'You said: hi'
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatloom.errors import ChatloomError, ModelError, ModelNotFound, PluginError

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.language_models import BaseChatModel

__all__ = ["ENTRY_POINT_GROUP", "BUILTIN_SCHEMES", "known_schemes", "resolve_model"]

ENTRY_POINT_GROUP = "chatloom.models"

BUILTIN_SCHEMES: dict[str, str] = {
    "openai": "chatloom.models.openai_backend:create_openai_model",
    "local": "chatloom.models.local:create_local_model",
    "gguf": "chatloom.models.local:create_gguf_model",
    "hf": "chatloom.models.local:create_hf_model",
    "fake": "chatloom.testing:create_fake_model",
}
_INSTALL_HINT = {
    "openai": "pip install langchain-openai openai",
    "local": "pip install 'chatloom[local]'",
    "gguf": "pip install 'chatloom[local]'",
    "hf": "pip install 'chatloom[local]'",
}


def resolve_model(model_id: str | BaseChatModel, **options: Any) -> BaseChatModel:
    """Return the chat model named by ``model_id``; a model object is returned as it is.

    ``options`` go to the backend factory (e.g. ``base_url``, ``timeout``, ``temperature``);
    ``settings`` is passed only to factories that declare it. A bare name is tried as a local
    catalog entry, then as a ``.gguf`` file or a model directory.

    >>> resolve_model("fake:echo").invoke("ping").content
    'You said: ping'
    """
    if not isinstance(model_id, str):
        if hasattr(model_id, "invoke"):
            return model_id
        raise ModelNotFound(f"model {model_id!r} is neither a model id nor a chat model",
                            "pass an id like 'openai:gpt-4o-mini' or a langchain chat model")
    model_id = model_id.strip()
    scheme, sep, name = model_id.partition(":")
    if not sep or (len(scheme) == 1 and Path(model_id).exists()):  # bare name or C:\ path
        scheme, name = _guess_scheme(model_id)
    scheme = scheme.lower()
    factory, origin = _factory(scheme, model_id)
    kwargs = dict(options)
    settings = kwargs.pop("settings", None)
    if settings is not None and _accepts(factory, "settings"):
        kwargs["settings"] = settings
    if origin == "builtin":
        return factory(name, **kwargs)
    try:
        return factory(name, **kwargs)
    except ChatloomError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin's bug becomes a one-line error
        raise PluginError(
            f"model plugin {scheme!r} ({origin}) failed to create {model_id!r}: "
            f"{type(exc).__name__}: {_one_line(exc)}",
            "report it to the plugin's author, or pick another model",
        ) from exc


def known_schemes() -> list[str]:
    """Built-in schemes followed by the schemes that installed plugins add."""
    plugins = [ep.name for ep in _entry_points() if ep.name not in BUILTIN_SCHEMES]
    return [*BUILTIN_SCHEMES, *sorted(set(plugins))]


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


def _factory(scheme: str, model_id: str) -> tuple[Callable[..., Any], str]:
    if scheme in BUILTIN_SCHEMES:
        module_name, _, attr = BUILTIN_SCHEMES[scheme].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or module_name
            if missing.startswith("chatloom"):
                raise ModelError(f"the {scheme!r} backend is not available in this chatloom "
                                 f"build ({missing!r} is missing)",
                                 "reinstall chatloom, or use another model id") from None
            raise ModelError(f"model {model_id!r} needs the Python package {missing!r}",
                             _INSTALL_HINT.get(scheme, f"pip install {missing}")) from None
        factory = getattr(module, attr, None)
        if factory is None:
            raise ModelError(f"the {scheme!r} backend is not available ({module_name}.{attr} "
                             "is missing)", "reinstall chatloom, or use another model id")
        return factory, "builtin"
    for ep in _entry_points():
        if ep.name.lower() == scheme:
            dist = getattr(getattr(ep, "dist", None), "name", None)
            origin = f"{ep.value}" + (f" from package {dist!r}" if dist else "")
            try:
                factory = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure in a plugin
                raise PluginError(
                    f"model plugin {scheme!r} ({origin}) failed to load: "
                    f"{type(exc).__name__}: {_one_line(exc)}",
                    f"fix or uninstall {'the package ' + repr(dist) if dist else 'the plugin'}",
                ) from exc
            if not callable(factory):
                raise PluginError(f"model plugin {scheme!r} ({origin}) is not callable",
                                  "its entry point must name a factory(name, **options)")
            return factory, origin
    raise ModelNotFound(f"unknown model scheme {scheme!r} in {model_id!r}", _known_hint())


def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    try:
        return list(entry_points(group=ENTRY_POINT_GROUP))
    except Exception:  # noqa: BLE001 - broken metadata must not hide built-in schemes
        return []


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


def _accepts(factory: Callable[..., Any], param: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return param in params


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("…" if len(text) > 300 else "")
