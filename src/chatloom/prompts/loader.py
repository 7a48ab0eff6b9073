"""Find, parse, validate and compose prompt templates.

Lookup order for a name: an explicit path -> the workspace's ``prompts/NAME.yaml`` -> a plugin's
``chatloom.prompts`` entry point -> the built-in ``chatloom/prompts/builtin/NAME.yaml``.
``builtin:NAME`` skips straight to the built-ins. A workspace template may extend the built-in
of the same name (``extends: assistant`` inside ``prompts/assistant.yaml``): a file never
resolves to itself, the lookup moves on to the next source.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chatloom import strict_yaml
from chatloom.errors import PluginError, PromptError, closest_name
from chatloom.prompts.schema import FIXES, INHERITABLE, TYPOS, PromptFile
from chatloom.prompts.template import DEFAULT_TOOLS_SECTION, PromptTemplate, compile_text
from chatloom.strict_yaml import Document, Origin

_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class PromptInfo:
    """A row of ``chatloom prompts list``."""

    name: str
    source: str  # "workspace", "plugin <dist>", "builtin"
    location: str
    description: str = ""
    error: str = ""  # set when the template (or its plugin) fails to load
    shadowed: bool = False  # an earlier source has the same name


class _PluginText(str):
    """A plugin template's text, remembering its real file for error messages and relative extends."""

    file: str

    def __new__(cls, text: str, file: str) -> _PluginText:
        self = super().__new__(cls, text)
        self.file = file
        return self


@dataclass(frozen=True)
class _Source:
    key: str  # identity, for cycle detection
    name: str  # the default template name
    label: str  # "builtin", "workspace", "file", "plugin <dist>"
    file: str  # shown in messages
    read: Callable[[], str | dict[str, Any]]
    base_dir: Path | None  # relative `extends:` paths resolve against this


def builtin_dir() -> Any:
    """The directory (a Traversable) that holds the built-in templates."""
    from importlib.resources import files

    return files("chatloom.prompts") / "builtin"


def load_prompt(name_or_path: str | os.PathLike[str], workspace: Path | str | None = None) -> PromptTemplate:
    """Load a template by name or path, with ``extends`` applied and every field checked.

    >>> load_prompt("tutor").reasoning
    'cot'
    """
    ws = Path(workspace) if workspace is not None else None
    source = _find(str(name_or_path), ws, relative_to=None, skip=None, via=None)
    return _load(source, ws, chain=(), via=None)


def list_prompts(workspace: Path | str | None = None) -> list[PromptInfo]:
    """Every template visible from ``workspace``, in lookup order; load problems are reported, not raised."""
    ws = Path(workspace) if workspace is not None else None
    rows: list[PromptInfo] = []
    seen: set[str] = set()
    for source in _all_sources(ws):
        shadowed = source.name in seen
        seen.add(source.name)
        try:
            template = _load(source, ws, chain=(), via=None)
            rows.append(PromptInfo(source.name, source.label, source.file, template.description, shadowed=shadowed))
        except (PromptError, PluginError) as exc:
            rows.append(PromptInfo(source.name, source.label, source.file, error=str(exc), shadowed=shadowed))
    return rows


def check_prompt_plugin(plugin: Any) -> None:
    """Load the template a ``chatloom.prompts`` plugin declares, reading its YAML file and every
    file it ``extends``, and check each field (``chatloom plugins list --check``).

    Raises :class:`PluginError` when a file is missing from the installed package or unreadable,
    :class:`PromptError` when a template is invalid.
    """
    _load(_plugin_source(plugin), None, chain=(), via=None)


# -- finding ---------------------------------------------------------------------------------------


def _looks_like_path(ref: str) -> bool:
    return ref.endswith(_SUFFIXES) or "/" in ref or os.sep in ref


def _file_source(path: Path, label: str) -> _Source:
    path = path.resolve()
    return _Source(str(path), path.stem, label, _display(path), lambda: path.read_text(encoding="utf-8"), path.parent)


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _builtin_sources() -> list[_Source]:
    out = []
    for entry in sorted(builtin_dir().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(_SUFFIXES):
            out.append(_builtin_source(entry))
    return out


def _builtin_source(entry: Any) -> _Source:
    name = entry.name.rsplit(".", 1)[0]
    return _Source(f"builtin:{name}", name, "builtin", str(entry), entry.read_text, None)


def _workspace_sources(ws: Path | None) -> list[_Source]:
    if ws is None or not (ws / "prompts").is_dir():
        return []
    files = sorted(p for p in (ws / "prompts").iterdir() if p.suffix in _SUFFIXES and p.is_file())
    return [_file_source(p, "workspace") for p in files]


def _plugin_sources() -> list[_Source]:
    from chatloom import plugins

    return [_plugin_source(p) for p in plugins.discover("chatloom.prompts").values()]


def _plugin_source(plugin: Any) -> _Source:
    label = f"plugin {plugin.dist}"
    where = f"{plugin.value} ({plugin.dist})"

    def read() -> str | dict[str, Any]:
        obj = plugin.load()
        if isinstance(obj, dict):
            return obj
        if isinstance(obj, (str, os.PathLike)) or hasattr(obj, "read_text"):  # a path or a Traversable
            path = Path(obj) if isinstance(obj, (str, os.PathLike)) else obj
            try:
                return _PluginText(path.read_text(encoding="utf-8"), str(path))
            except FileNotFoundError:
                # The usual cause: the build left the YAML out of the wheel (setuptools ships only
                # .py files unless told otherwise), so the path exists in the source tree alone.
                package = plugin.value.partition(":")[0].partition(".")[0]
                raise PluginError(
                    f"prompt plugin {plugin.label} points at {str(path)!r}, which is not installed",
                    f'ship the YAML as package data (setuptools: `[tool.setuptools.package-data]` `{package} = ["*.yaml"]` '
                    "in the plugin's pyproject.toml), then reinstall the plugin",
                ) from None
            except OSError as exc:
                raise PluginError(
                    f"prompt plugin {plugin.label} points at {str(path)!r}, which can't be read ({exc})",
                    "check the file's permissions, or reinstall the plugin",
                ) from None
        raise PluginError(
            f"prompt plugin {plugin.label} points at a {type(obj).__name__}, not a template",
            "make the entry point name a path to a YAML file (e.g. importlib.resources.files(__name__) / 'x.yaml')",
        )

    return _Source(f"plugin:{plugin.dist}:{plugin.name}", plugin.name, label, where, read, None)


def _all_sources(ws: Path | None) -> list[_Source]:
    return [*_workspace_sources(ws), *_plugin_sources(), *_builtin_sources()]


def _find(ref: str, ws: Path | None, relative_to: Path | None, skip: str | None, via: Origin | None) -> _Source:
    where = f"{via}: " if via else ""
    if ref.startswith("builtin:"):
        name = ref.removeprefix("builtin:")
        for source in _builtin_sources():
            if source.name == name:
                return source
        raise PromptError(
            f"{where}no built-in prompt {name!r}", f"built-ins: {', '.join(s.name for s in _builtin_sources())}"
        )
    if _looks_like_path(ref):
        path = Path(ref).expanduser()
        candidates = (
            [path] if path.is_absolute() else [b / path for b in (relative_to, ws, Path.cwd()) if b is not None]
        )
        for candidate in candidates:
            if candidate.is_file():
                return _file_source(candidate, "file")
        raise PromptError(
            f"{where}prompt file {ref!r} not found (looked in {', '.join(str(c.parent) for c in candidates)})",
            "check the path; relative paths start at the workspace (the folder that holds agents/ and prompts/)",
        )
    for source in _all_sources(ws):
        if source.name == ref and source.key != skip:
            return source
    names = sorted({s.name for s in _all_sources(ws)})
    close = closest_name(ref, names)
    guess = f"did you mean {close!r}? " if close else ""
    place = f"{ws / 'prompts'}, " if ws is not None else ""
    raise PromptError(
        f"{where}unknown prompt {ref!r}",
        f"{guess}available: {', '.join(names)}; or add {place}a file prompts/{ref}.yaml, or give a path",
    )


# -- loading and composing -------------------------------------------------------------------------


def _load(source: _Source, ws: Path | None, chain: tuple[_Source, ...], via: Origin | None) -> PromptTemplate:
    if any(s.key == source.key for s in chain):
        names = " -> ".join(s.name for s in (*chain, source))
        raise PromptError(
            f"{via}: field 'extends': extends cycle {names}",
            "remove one `extends:` so the chain ends at a template that extends nothing",
        )
    raw = source.read()
    if isinstance(raw, _PluginText):  # now that it's loaded, name the real file and its folder
        real = Path(raw.file)
        source = replace(source, file=_display(real), base_dir=real.parent if real.is_file() else None)
    if isinstance(raw, dict):
        doc = Document(source.file, raw, {})
    else:
        doc = strict_yaml.parse(str(raw), source.file, PromptError, "prompt template")
    spec: PromptFile = strict_yaml.validate(PromptFile, doc, PromptError, FIXES, TYPOS)

    own: dict[str, Any] = {f: getattr(spec, f) for f in INHERITABLE}
    origins = _own_origins(spec, doc)
    values: dict[str, Any] = {}
    variables: dict[str, Any] = {}
    parents_used: list[str] = []
    if spec.extends is not None:
        extends_origin = doc.origin(("extends",))
        wanted = {f: spec.extends for f in INHERITABLE} if isinstance(spec.extends, str) else dict(spec.extends)
        parents: dict[str, PromptTemplate] = {}
        for ref in dict.fromkeys(wanted.values()):
            parent_source = _find(ref, ws, relative_to=source.base_dir, skip=source.key, via=extends_origin)
            parents[ref] = _load(parent_source, ws, chain + (source,), extends_origin)
            parents_used += [parents[ref].path, *parents[ref].extends]
            variables.update(parents[ref].variables)  # inherited text may use its template's variables
            origins.update({k: v for k, v in parents[ref].origins.items() if k.startswith("variables.")})
        for field_name, ref in wanted.items():
            if own[field_name] is None:
                parent = parents[ref]
                values[field_name] = getattr(parent, field_name)
                origins.update({k: v for k, v in parent.origins.items() if _field_of(k) == field_name})
    for field_name, value in own.items():
        if value is not None:
            values[field_name] = value
    variables.update(own["variables"] or {})
    origins.update({f"variables.{k}": doc.origin(("variables", k)) for k in own["variables"] or {}})

    name = spec.name or source.name
    if not values.get("role"):
        raise PromptError(
            f"{doc.origin(())}: prompt {name!r} has no role",
            "add `role: |` with who the assistant is, or `extends: assistant` to inherit one",
        )
    template = PromptTemplate(
        name=name,
        description=(values.get("description") or "").strip(),
        version=spec.version,
        role=values["role"],
        policies=tuple(values.get("policies") or ()),
        reasoning=values.get("reasoning") or "direct",
        variables=variables,
        examples=tuple(values.get("examples") or ()),
        tools_section=DEFAULT_TOOLS_SECTION if values.get("tools_section") is None else values["tools_section"],
        source=source.label,
        path=source.file,
        extends=tuple(dict.fromkeys(parents_used)),
        origins=origins,
    )
    _compile_all(template)
    return template


def _field_of(key: str) -> str:
    return key.split(".", 1)[0].split("[", 1)[0]


def _own_origins(spec: PromptFile, doc: Document) -> dict[str, Origin]:
    def at(*path: str | int) -> Origin:
        return doc.origin(path)

    out: dict[str, Origin] = {}
    if spec.role is not None:
        out["role"] = at("role")
    if spec.tools_section is not None:
        out["tools_section"] = at("tools_section")
    for i in range(len(spec.policies or ())):
        out[f"policies[{i}]"] = at("policies", i)
    for i, example in enumerate(spec.examples or ()):
        for part in ("user", "thinking", "assistant"):
            out[f"examples[{i}].{part}"] = at("examples", i, part)
        for j in range(len(example.tool_calls)):
            out[f"examples[{i}].tool_calls[{j}].result"] = at("examples", i, "tool_calls", j, "result")
    return out


def _compile_all(template: PromptTemplate) -> None:
    """Compile every templated field now, so syntax errors and undefined names surface at load."""
    declared = set(template.variables)
    keys = ["role", *(f"policies[{i}]" for i in range(len(template.policies)))]
    if template.tools_section:
        keys.append("tools_section")
    for i, example in enumerate(template.examples):
        keys += [f"examples[{i}].user", f"examples[{i}].assistant"]
        if example.thinking:
            keys.append(f"examples[{i}].thinking")
        keys += [f"examples[{i}].tool_calls[{j}].result" for j in range(len(example.tool_calls))]
    for key in keys:
        origin = template.origins.get(key, Origin(template.path, 1))
        template._compiled[key] = compile_text(template._text(key), origin, key, declared)
