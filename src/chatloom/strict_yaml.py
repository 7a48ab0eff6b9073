"""Strict YAML documents: every value remembers its line, and pydantic errors name file:line.

Used for everything a user writes as YAML (prompt templates, agent specs), so that a typo points
at the line to fix instead of a Python traceback.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from chatloom.errors import ChatloomError, closest_name

Path_ = tuple[str | int, ...]

try:  # the C loader is ~10x faster and keeps line marks all the same
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader


@dataclass(frozen=True)
class Origin:
    """Where a value came from: a file, the 1-based line of its value, and its field path."""

    file: str
    line: int
    block: bool = False  # a ``|`` or ``>`` scalar: its text starts on the next line

    @property
    def text_line(self) -> int:
        """The file line that holds the first line of the value's text."""
        return self.line + 1 if self.block else self.line

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Document:
    """A parsed YAML mapping plus the origin of every key and value in it."""

    file: str
    data: dict[str, Any]
    origins: dict[Path_, Origin]

    def origin(self, path: Path_) -> Origin:
        """The origin of ``path`` or, when it is absent (a missing field), of its nearest parent."""
        for end in range(len(path), -1, -1):
            found = self.origins.get(tuple(path[:end]))
            if found is not None:
                return found
        return Origin(self.file, 1)


def format_path(path: Path_) -> str:
    """``("examples", 0, "user")`` -> ``examples[0].user``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse(text: str, file: str, error: type[ChatloomError], what: str) -> Document:
    """Parse ``text`` as one YAML mapping, raising ``error`` with file:line on any problem."""
    try:
        _refuse_anchors(text, file, error)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = (exc.problem or str(exc)).strip()
        if exc.context and exc.context_mark and exc.context_mark.line + 1 != line:
            problem += f" ({exc.context} that started at line {exc.context_mark.line + 1})"
        raise error(
            f"{file}:{line}: YAML syntax error: {problem}",
            "fix the YAML at that line (check indentation, a missing ':' or an unclosed quote)",
        ) from None
    except yaml.YAMLError as exc:
        raise error(f"{file}:1: YAML error: {exc}", "fix the YAML syntax") from None
    if data is None:
        raise error(f"{file}:1: the file is empty", f"write a YAML mapping that describes the {what}")
    if not isinstance(data, dict):
        raise error(
            f"{file}:1: expected a YAML mapping (key: value lines), got a {type(data).__name__}",
            f"write the {what} as `key: value` lines",
        )
    origins: dict[Path_, Origin] = {}
    _walk(node, (), file, origins, error)
    return Document(file, data, origins)


def _refuse_anchors(text: str, file: str, error: type[ChatloomError]) -> None:
    """Refuse anchors (``&name``) and aliases (``*name``, ``<<: *name``) with file:line.

    A spec or prompt never needs them, and nested aliases are a "billion laughs": 327 bytes
    that expand to gigabytes once constructed or walked as a tree. The check reads the event
    stream, which is linear in the text and expands nothing, before anything is composed.
    """
    for event in yaml.parse(text, Loader=_Loader):
        anchor = getattr(event, "anchor", None)  # aliases, and anchored scalars/collections
        if anchor is not None:
            kind, sign = ("alias", "*") if isinstance(event, yaml.AliasEvent) else ("anchor", "&")
            line = event.start_mark.line + 1 if event.start_mark else 1
            raise error(
                f"{file}:{line}: YAML {kind} {sign}{anchor} is not allowed "
                "(anchors and aliases are refused in specs and prompts)",
                "write the repeated value out in full",
            )


def _walk(node: yaml.Node, path: Path_, file: str, out: dict[Path_, Origin], error: type[ChatloomError]) -> None:
    block = isinstance(node, yaml.ScalarNode) and node.style in ("|", ">")
    out.setdefault(path, Origin(file, node.start_mark.line + 1, block))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise error(
                    f"{file}:{key_node.start_mark.line + 1}: field {format_path(path + (key,))!r} is set twice",
                    "keep one of the two lines",
                )
            seen.add(key)
            out[path + (key,)] = Origin(file, key_node.start_mark.line + 1)
            _walk(value_node, path + (key,), file, out, error)
            # the value's own origin (for block scalars the text starts below the key)
            if isinstance(value_node, yaml.ScalarNode):
                out[path + (key,)] = Origin(file, value_node.start_mark.line + 1, value_node.style in ("|", ">"))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), file, out, error)


def validate(
    model: type[BaseModel],
    doc: Document,
    error: type[ChatloomError],
    fixes: dict[str, str] | None = None,
    typos: dict[str, str] | None = None,
) -> Any:
    """Validate ``doc.data`` against ``model``; the first problem becomes ``error`` with file:line.

    ``fixes`` maps a field (or dotted path) to the advice shown when it is wrong; ``typos`` maps
    likely wrong keys to the real field name.
    """
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        raise _explain(model, doc, exc, error, fixes or {}, typos or {}) from None


def _explain(
    model: type[BaseModel],
    doc: Document,
    exc: ValidationError,
    error: type[ChatloomError],
    hints: dict[str, str],
    typos: dict[str, str],
) -> ChatloomError:
    errors = exc.errors(include_url=False)

    # Unknown keys first (a misspelt key also causes a "missing" error), then top to bottom.
    # Among a union's alternatives, the one that got furthest into the value explains it best.
    def order(e: Any) -> tuple[bool, int, int, int]:
        path = _data_path(doc.data, e["loc"])
        return (e["type"] != "extra_forbidden", doc.origin(path[:1]).line, -len(path), doc.origin(path).line)

    errors.sort(key=order)
    first = errors[0]
    path = _data_path(doc.data, first["loc"])
    value = first.get("input")
    if first["type"] == "value_error" and isinstance(value, dict):
        # a validator that names one key of a mapping: point at that key's line
        for key in value:
            if repr(key) in first["msg"]:
                path += (key,)
                value = value[key]
                break
    kind = first["type"]
    origin = doc.origin(path)
    # a union reports one error per alternative: count problems by the field they are in
    mine = _data_path(doc.data, first["loc"])
    paths = [_data_path(doc.data, e["loc"]) for e in errors]
    others = len({p[:2] for p in paths if p[: len(mine)] != mine and mine[: len(p)] != p})
    more = f" (and {others} more problem{'s' if others > 1 else ''})" if others else ""
    if kind == "extra_forbidden":
        key = str(path[-1])
        parent = path[:-1]
        fields = _fields_at(model, parent)
        where = f" in {format_path(parent)}" if parent else ""
        guess = typos.get(key) or closest_name(key, fields)
        fix = f"did you mean {guess!r}? " if guess else ""
        return error(
            f"{origin}: unknown field {key!r}{where}{more}",
            f"{fix}valid fields{where} are: {', '.join(fields)}",
        )
    if kind == "missing":
        key = str(first["loc"][-1])
        parent = path if path and path[-1] != key else path[:-1]
        field = format_path(parent + (key,))
        fix = hints.get(field) or hints.get(key) or f"add `{key}: ...`"
        return error(f"{origin}: field {field!r} is required but missing{more}", fix)
    field = format_path(path) or "(top level)"
    msg = first["msg"]
    if kind.startswith("value_error"):
        msg = msg.removeprefix("Value error, ")
    named = [hints[str(p)] for p in reversed(path) if str(p) in hints]
    fix = hints.get(field) or (named[0] if named else _type_hint(kind, msg))
    return error(f"{origin}: field {field!r}: {msg} (got {value!r}){more}", fix)


def _type_hint(kind: str, msg: str) -> str:
    if "literal" in kind or "enum" in kind:
        return "use one of the values listed"
    if kind.startswith(("int", "float", "bool", "string", "dict", "list", "model")):
        return "change the value to that type"
    return "fix the value"


def _data_path(data: Any, loc: tuple[Any, ...]) -> Path_:
    """Map a pydantic error location onto the document (dropping union-member tags)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part not in node and not _is_tag(part):
            path.append(part)  # a missing or unknown key: keep it so the message can name it
            break
    return tuple(path)


def _is_tag(part: str) -> bool:
    # pydantic names union members like "str", "dict[str,str]", "function-after[...]"
    return any(c in part for c in "[],-") or part in {"str", "int", "float", "bool", "list", "dict", "none"}


def _get(data: Any, path: Path_) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _fields_at(model: type[BaseModel], path: Path_) -> list[str]:
    """The field names of the model found at ``path`` inside ``model`` (for "valid fields" hints)."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            current = _unwrap(current, list)
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        current = _unwrap(field.annotation, None)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any, container: type | None) -> Any:
    """Find the BaseModel inside ``X | None``, ``list[X]``, ``dict[str, X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        real = [a for a in args if a is not type(None)]
        if len(real) == 1:
            return _unwrap(real[0], container)
        for arg in real:
            found = _unwrap(arg, container)
            if isinstance(found, type) and issubclass(found, BaseModel):
                return found
        return None
    if origin in (list, tuple) and args:
        return _unwrap(args[0], None) if container is list else annotation
    if origin is dict and len(args) == 2:
        return _unwrap(args[1], None)
    return annotation
