"""Plugins: installed packages that add prompts, tools, model backends or memory stores.

A plugin is any distribution that declares entry points in one of the groups below::

    [project.entry-points."chatloom.tools"]
    word_count = "chatloom_example_plugin:word_count"      # a langchain-core tool

    [project.entry-points."chatloom.prompts"]
    haiku = "chatloom_example_plugin:HAIKU"                # a path to a YAML template

    [project.entry-points."chatloom.models"]
    mybackend = "my_pkg:MyChatModel"                       # a BaseChatModel class, or factory(name, **options)

    [project.entry-points."chatloom.memory"]
    notes = "my_pkg:NotesMemory"                           # a Memory, or a class/factory that makes one

Discovery only reads package metadata; a plugin's code is imported the first time one of its
entry points is used, so startup stays fast. A plugin that fails to import is reported as a
:class:`PluginError` that names its file:line; it never takes the CLI down with it.

>>> from chatloom.plugins import discover
>>> isinstance(discover("chatloom.tools"), dict)  # name -> plugin; ['word_count'] with the example plugin
True
"""

from __future__ import annotations

import functools
import inspect
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from chatloom.errors import ChatloomError, PluginError

GROUPS: tuple[str, ...] = ("chatloom.prompts", "chatloom.tools", "chatloom.models", "chatloom.memory")

_Made = TypeVar("_Made")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plugin:
    """One entry point: discovered from metadata, imported only by :meth:`load`."""

    group: str
    name: str
    value: str  # "module:attr"
    dist: str  # the distribution that declares it ("?" when unknown)
    version: str

    def load(self) -> Any:
        """Import the plugin and return its object; failures become a :class:`PluginError`."""
        return _load(self)

    @property
    def label(self) -> str:
        """``name (dist version)`` for messages and listings."""
        return f"{self.name!r} from {self.dist} {self.version}".rstrip()


def discover(group: str) -> dict[str, Plugin]:
    """The entry points in ``group``, by name, without importing anything.

    When two distributions declare the same name, the first one found wins (and the clash is
    logged), matching Python's own path order.
    """
    if group not in GROUPS:
        raise PluginError(f"unknown plugin group {group!r}", f"use one of: {', '.join(GROUPS)}")
    return dict(_discover_all().get(group, {}))


def all_plugins() -> list[Plugin]:
    """Every chatloom plugin entry point in every group, without importing any of them."""
    found = _discover_all()
    return [p for group in GROUPS for p in found.get(group, {}).values()]


def load(group: str, name: str) -> Any:
    """Import and return the object of entry point ``name`` in ``group``.

    Raises :class:`PluginError` if no plugin has that name or if importing it fails.
    """
    plugins = discover(group)
    if name not in plugins:
        known = ", ".join(sorted(plugins)) or "none installed"
        raise PluginError(f"no plugin {name!r} in group {group!r}", f"installed: {known}")
    return plugins[name].load()


def check(plugin: Plugin) -> PluginError | None:
    """Try to load ``plugin``; return the error instead of raising it (for listings)."""
    try:
        plugin.load()
    except PluginError as exc:
        return exc
    return None


def declared_keywords(factory: Callable[..., Any], **candidates: Any) -> dict[str, Any]:
    """The ``candidates`` that are not None and whose names ``factory``'s signature declares.

    Optional context such as ``settings`` goes only to the plugins that ask for it (a
    ``**kwargs`` parameter does not count as asking).
    """
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins and C callables without a signature
        return {}
    return {name: value for name, value in candidates.items() if value is not None and name in params}


def create(plugin: Plugin, kind: str, made: str, factory: Callable[..., _Made], *args: Any, **kwargs: Any) -> _Made:
    """Call ``factory`` (a loaded plugin's) to make ``made``; its bugs become one-line PluginErrors.

    ``kind`` names what the plugin provides ("model", "memory") in the message and hint. A
    :class:`ChatloomError` the factory raises on purpose passes through unchanged.
    """
    try:
        return factory(*args, **kwargs)
    except ChatloomError:
        raise
    except Exception as exc:  # any bug in third-party code becomes a one-line error
        raise PluginError(
            f"{kind} plugin {plugin.label} ({plugin.value}) failed to create {made}: {type(exc).__name__}: {one_line(exc)}",
            f"report it to the plugin's author, or pick another {kind}",
        ) from exc


def one_line(exc: BaseException) -> str:
    """``str(exc)`` on one line and at most 300 characters, for a :class:`ChatloomError` message."""
    text = " ".join(str(exc).split())
    return text[:300] + ("…" if len(text) > 300 else "")


def problems() -> list[PluginError]:
    """The plugin failures seen so far in this process (each is also logged as a warning)."""
    return list(_PROBLEMS.values())


def refresh() -> None:
    """Forget what was discovered and loaded, e.g. after ``pip install``-ing a plugin."""
    _discover_all.cache_clear()
    _LOADED.clear()
    _PROBLEMS.clear()


# -- internals -----------------------------------------------------------------------------------

_LOADED: dict[tuple[str, str], Any] = {}
_PROBLEMS: dict[tuple[str, str], PluginError] = {}


@functools.lru_cache(maxsize=1)
def _discover_all() -> dict[str, dict[str, Plugin]]:
    from importlib.metadata import distributions

    found: dict[str, dict[str, Plugin]] = {}
    seen_dists: set[str] = set()
    for dist in distributions():
        try:
            # entry_points.txt first: most packages declare no chatloom plugin, and parsing each
            # one's METADATA for its name (below) was 2/3 of a cold `chatloom ask`'s tool set-up.
            entry_points = [ep for ep in dist.entry_points if ep.group in GROUPS]
            if not entry_points:
                continue
            dist_name = dist.metadata["Name"] or "?"
            # the same distribution can be visible twice (e.g. a path added to sys.path twice)
            key = f"{dist_name}=={dist.version}"
            if key in seen_dists:
                continue
            seen_dists.add(key)
        except Exception as exc:  # noqa: BLE001 - a corrupt dist-info must not break discovery
            log.warning("skipping unreadable package metadata at %s: %s", getattr(dist, "_path", "?"), exc)
            continue
        for ep in entry_points:
            plugin = Plugin(ep.group, ep.name, ep.value, dist_name, dist.version or "")
            group = found.setdefault(ep.group, {})
            if ep.name in group:
                log.warning("plugin %s is shadowed by %s", plugin.label, group[ep.name].label)
                continue
            group[ep.name] = plugin
    return found


def _load(plugin: Plugin) -> Any:
    key = (plugin.group, plugin.name)
    if key in _LOADED:
        return _LOADED[key]
    if key in _PROBLEMS:
        raise _PROBLEMS[key]
    from importlib.metadata import EntryPoint

    try:
        obj = EntryPoint(plugin.name, plugin.value, plugin.group).load()
    except Exception as exc:  # noqa: BLE001 - any failure in third-party code is the plugin's
        error = PluginError(
            f"plugin {plugin.label} ({plugin.group}) failed to load {plugin.value}: "
            f"{_where(exc)}{type(exc).__name__}: {one_line(exc)}",
            f"fix or uninstall it (`pip uninstall {plugin.dist}`); chatloom skips it meanwhile",
        )
        _PROBLEMS[key] = error
        log.warning("%s", error)
        raise error from None
    _LOADED[key] = obj
    return obj


def _where(exc: BaseException) -> str:
    """``file:line: `` of the innermost frame outside importlib, when there is one."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if "importlib" not in f.filename and not f.filename.endswith("chatloom/plugins.py")
    ]
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}: "
    return f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
