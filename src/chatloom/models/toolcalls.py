"""Recover tool calls that a model wrote as text.

Small local models (and OpenAI-compatible servers in front of them) rarely return structured
``tool_calls``. They write the call into the reply instead: Qwen's ``<tool_call>`` tags, bare
JSON, JSON inside code fences, Python dict literals, ``functions.NAME:`` prefixes. This module
turns all of those into langchain ``ToolCall`` dicts and removes the call text from the
visible content.

>>> content, calls = parse_tool_calls(
...     'Let me compute. ```json\\n{"tool": "calculator", "input": "17*23"}\\n```',
...     ["calculator"], param_names={"calculator": ["expression"]})
>>> content
'Let me compute.'
>>> calls[0]["name"], calls[0]["args"]
('calculator', {'expression': '17*23'})

Only names in ``tool_names`` count; every other piece of text, JSON or not, stays content.
The parser never raises: on any input it returns ``(text, [])`` at worst, and a parser bug
that got there is logged (``chatloom.models.toolcalls``, with the traceback), never hidden.

While a reply streams, :class:`CallHoldBack` decides what may be shown: text from where a call
may start is held back until the reply is complete and parsed, so a call never flashes up as
prose. Every backend and the agent use it.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import uuid
from collections.abc import Collection, Mapping
from typing import Any

__all__ = [
    "TOOL_CALL_TAG",
    "CallHoldBack",
    "looks_like_tool_call",
    "new_call_id",
    "opens_tool_call",
    "parse_tool_calls",
]

log = logging.getLogger("chatloom.models.toolcalls")

# Model output longer than this is scanned only in part: no reply worth parsing is this big,
# and it bounds the work on adversarial input.
_MAX_TEXT = 200_000
_MAX_BLOB = 50_000
_SCAN_BUDGET = 2_000_000  # characters the bracket matcher may visit per call

_NAME_KEYS = ("name", "tool", "tool_name", "function", "action", "recipient_name")
_ARG_KEYS = ("arguments", "args", "input", "parameters", "params", "tool_input", "action_input", "kwargs")
_WRAPPER_KEYS = ("tool_calls", "calls", "function_call", "tool_call", "functions")

_TAG_RE = re.compile(
    r"<(tool_call|toolcall|function_call|functioncall|tool_use)>\s*(.*?)\s*(?:</\1>|$)",
    re.DOTALL | re.IGNORECASE,
)
_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)```", re.DOTALL)
_PREFIX_RE = re.compile(r"(?:\bfunctions|\bto=functions)\.([A-Za-z_][\w.-]*)\s*:?\s*")
# Markers some chat templates put before a call; dropped from content when a call is found.
_MARKERS_RE = re.compile(
    r"\[TOOL_CALLS\]|<\|python_tag\|>|<\|tool_call\|>|<tool_calls?>|"
    r"</tool_calls?>|\bAction:\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_PY_TOKENS = re.compile(
    r"(\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*')"  # a string literal: left alone
    r"|,(\s*[}\]])"  # a trailing comma
    r"|\b(true|false|null)\b"  # JSON literals Python does not know
    r"|([{,]\s*)([A-Za-z_][\w-]*)(\s*:)"  # an unquoted key
)
_PY_WORDS = {"true": "True", "false": "False", "null": "None"}


def new_call_id() -> str:
    """A fresh id for a tool call (``call_`` + 24 hex digits), as OpenAI formats them."""
    return "call_" + uuid.uuid4().hex[:24]


def parse_tool_calls(
    text: str,
    tool_names: Collection[str],
    param_names: Mapping[str, list[str]] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """Split model ``text`` into (visible content, tool calls written in it).

    ``tool_names`` are the tools bound to the model; only calls naming one of them count.
    ``param_names`` maps a tool to its parameter names: when a tool has exactly one parameter,
    a bare string argument (``{"tool": "calculator", "input": "17*23"}``) is mapped to it.
    Each call is a langchain ``ToolCall`` dict ``{"name", "args", "id", "type": "tool_call"}``
    with a fresh id.

    >>> parse_tool_calls("<tool_call>{'name': 'search', 'arguments': {'q': 'x',}}</tool_call>",
    ...                  {"search"})[1][0]["args"]
    {'q': 'x'}
    """
    try:
        if not isinstance(text, str) or not text or not tool_names:
            return text, []
        return _Parser(text, tool_names, param_names or {}).run()
    except Exception:
        log.exception(
            "the tool-call parser failed on %d characters of model text; "
            "keeping the text as the answer (please report this)",
            len(text),
        )
        return text, []


class _Parser:
    def __init__(self, text: str, tool_names: Collection[str], params: Mapping[str, list[str]]) -> None:
        self.text = text
        self.names = {str(n) for n in tool_names}
        self.params = params
        self.spans: list[tuple[int, int, list[dict[str, Any]]]] = []
        self.budget = _SCAN_BUDGET

    # -- driver ---------------------------------------------------------------------------
    def run(self) -> tuple[str, list[dict[str, Any]]]:
        text = self.text[:_MAX_TEXT]
        if not any(n in text for n in self.names):
            return self.text, []
        self._tags(text)
        self._fences(text)
        self._prefixed(text)
        self._python_calls(text)
        self._scan_json(text, 0, len(text))
        if not self.spans:
            return self.text, []
        self.spans.sort(key=lambda s: s[0])
        pieces, calls, pos = [], [], 0
        for start, end, found in self.spans:
            pieces.append(self.text[pos:start])
            calls.extend(found)
            pos = end
        pieces.append(self.text[pos:])
        content = _MARKERS_RE.sub("", "".join(pieces))
        content = re.sub(r"[ \t]+\n", "\n", content)
        content = re.sub(r"\n{3,}", "\n\n", content).strip()
        return content, calls

    def _free(self, start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e, _ in self.spans)

    def _add(self, start: int, end: int, calls: list[dict[str, Any]]) -> None:
        self.spans.append((start, end, calls))

    # -- sources --------------------------------------------------------------------------
    def _tags(self, text: str) -> None:
        for m in _TAG_RE.finditer(text):
            calls = self._calls_in_blob(m.group(2))
            if calls:
                self._add(m.start(), m.end(), calls)

    def _fences(self, text: str) -> None:
        for m in _FENCE_RE.finditer(text):
            if not self._free(m.start(), m.end()):
                continue
            body_start = m.start(2)
            body = m.group(2)
            calls = self._calls_in_blob(body)
            if calls:
                self._add(m.start(), m.end(), calls)
                continue
            # Calls inside a fence that also holds other text: take just the calls, and the
            # whole fence only if nothing but calls was in it.
            before = len(self.spans)
            self._prefixed(text, body_start, m.end(2))
            self._python_calls(text, body_start, m.end(2))
            self._scan_json(text, body_start, m.end(2))
            new = self.spans[before:]
            if new:
                rest = list(body)
                for s, e, _ in new:
                    rest[s - body_start : e - body_start] = [" "] * (e - s)
                if not "".join(rest).strip():
                    del self.spans[before:]
                    self._add(m.start(), m.end(), [c for _, _, cs in new for c in cs])

    def _prefixed(self, text: str, lo: int = 0, hi: int | None = None) -> None:
        """``functions.calculator:{"expression": "1+1"}`` (chatml-function-calling leaks)."""
        hi = len(text) if hi is None else hi
        for m in _PREFIX_RE.finditer(text, lo, hi):
            name = m.group(1)
            if name not in self.names or not self._free(m.start(), m.end()):
                continue
            j = m.end()
            if j < hi and text[j] == "(":
                j += 1
            while j < hi and text[j] in " \t\r\n":
                j += 1
            end = self._match(text, j, hi) if j < hi and text[j] in "{[" else None
            if end is None:
                continue
            value = _loads(text[j:end])
            if isinstance(value, dict):
                calls = self._normalise(value)
                if not calls:
                    calls = [self._call(name, value)]
                close = end
                rest = text[end:hi]
                if m.end() < j and text[m.end()] == "(" and rest.lstrip().startswith(")"):
                    close = end + rest.index(")") + 1
                self._add(m.start(), close, calls)

    def _python_calls(self, text: str, lo: int = 0, hi: int | None = None) -> None:
        """A line that is only ``calculator(expression="17*23")``."""
        hi = len(text) if hi is None else hi
        names = "|".join(re.escape(n) for n in sorted(self.names, key=len, reverse=True))
        if not names:
            return
        pattern = re.compile(rf"^[ \t]*(?:{names})[ \t]*\(.*\)[ \t]*;?[ \t]*$", re.MULTILINE)
        for m in pattern.finditer(text, lo, hi):
            if not self._free(m.start(), m.end()) or m.end() - m.start() > _MAX_BLOB:
                continue
            call = self._python_call(m.group(0).strip().rstrip(";"))
            if call:
                self._add(m.start(), m.end(), [call])

    def _python_call(self, src: str) -> dict[str, Any] | None:
        try:
            node = ast.parse(src, mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            return None
        name = node.func.id
        if name not in self.names:
            return None
        try:
            kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
            positional = [ast.literal_eval(a) for a in node.args]
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            return None
        if len(node.keywords) != len(kwargs):
            return None  # **kwargs splat
        if positional:
            if len(positional) == 1 and not kwargs and isinstance(positional[0], dict):
                return self._call(name, positional[0])
            params = list(self.params.get(name, []))
            if len(positional) > len(params):
                if len(positional) == 1 and not kwargs:
                    return self._call(name, positional[0])
                return None
            kwargs = {**dict(zip(params, positional)), **kwargs}
        return self._call(name, kwargs)

    def _scan_json(self, text: str, lo: int, hi: int) -> None:
        i = lo
        while i < hi and self.budget > 0:
            j = _next_open(text, i, hi)
            if j < 0:
                return
            if not self._free(j, j + 1):
                i = next(e for s, e, _ in self.spans if s <= j < e)
                continue
            end = self._match(text, j, hi)
            if end is None:
                i = j + 1
                continue
            blob = text[j:end]
            if not self._free(j, end) or not any(n in blob for n in self.names):
                i = j + 1
                continue
            value = _loads(blob)
            calls = self._normalise(value) if value is not None else []
            if calls:
                self._add(j, end, calls)
                i = end
            elif isinstance(value, (dict, list)):
                i = end  # a parsed value that is not (only) calls: its insides are data
            else:
                i = j + 1

    # -- helpers --------------------------------------------------------------------------
    def _match(self, text: str, start: int, hi: int) -> int | None:
        """End (exclusive) of the bracketed value opening at ``start``, or None."""
        try:  # the common case, strict JSON, at C speed
            _, end = _DECODER.raw_decode(text[start:hi])
            return start + end
        except (ValueError, RecursionError):
            pass
        depth, quote, i = 0, "", start
        limit = min(hi, start + _MAX_BLOB)
        while i < limit:
            self.budget -= 1
            if self.budget <= 0:
                return None
            c = text[i]
            if quote:
                if c == "\\":
                    i += 1
                elif c == quote:
                    quote = ""
                elif c == "\n" and quote == "'":
                    return None  # an apostrophe in prose, not a string
            elif c in "\"'":
                quote = c
            elif c in "{[":
                depth += 1
            elif c in "}]":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        return None

    def _calls_in_blob(self, blob: str) -> list[dict[str, Any]]:
        """Calls when ``blob`` is nothing but one call or a list of calls."""
        blob = blob.strip()
        if not blob or len(blob) > _MAX_BLOB or not any(n in blob for n in self.names):
            return []
        value = _loads(blob)
        if value is None:
            # Several calls on separate lines (JSON Lines), as some templates emit.
            lines = [ln for ln in blob.splitlines() if ln.strip()]
            if len(lines) > 1:
                calls: list[dict[str, Any]] = []
                for ln in lines:
                    found = self._normalise(_loads(ln))
                    if not found:
                        return []
                    calls.extend(found)
                return calls
            return []
        return self._normalise(value)

    def _normalise(self, value: Any) -> list[dict[str, Any]]:
        """Tool calls from a parsed value, or [] if it is not (entirely) known tool calls."""
        if isinstance(value, list):
            if not value:
                return []
            calls: list[dict[str, Any]] = []
            for item in value:
                found = self._normalise(item)
                if not found:
                    return []
                calls.extend(found)
            return calls
        if not isinstance(value, dict):
            return []
        for key in _WRAPPER_KEYS:
            inner = value.get(key)
            if len(value) <= 2 and isinstance(inner, (list, dict)) and key != "function":
                found = self._normalise(inner)
                if found:
                    return found
        name, args = _name_and_args(value)
        if name is None:
            return []
        if name.startswith("functions."):
            name = name[len("functions.") :]
        if name not in self.names:
            return []
        return [self._call(name, args)]

    def _call(self, name: str, args: Any) -> dict[str, Any]:
        params = list(self.params.get(name, []))
        if isinstance(args, str):
            parsed = _loads(args) if args.strip()[:1] in ("{", "[") else None
            args = parsed if isinstance(parsed, dict) else args
        if args is None:
            args = {}
        if not isinstance(args, dict):
            key = params[0] if len(params) == 1 else "input"
            args = {} if (len(params) == 0 and name in self.params and args == "") else {key: args}
        elif len(params) == 1 and len(args) == 1:
            ((key, val),) = args.items()
            if key not in params and key in _ARG_KEYS:
                args = {params[0]: val}
        return {"name": name, "args": args, "id": new_call_id(), "type": "tool_call"}


def _name_and_args(obj: dict[str, Any]) -> tuple[str | None, Any]:
    func = obj.get("function")
    if isinstance(func, dict) and isinstance(func.get("name"), str):
        return func["name"], _first(func, _ARG_KEYS)
    for key in _NAME_KEYS:
        name = obj.get(key)
        if isinstance(name, str) and name:
            args = _first(obj, _ARG_KEYS)
            if args is None:
                # {"name": "calculator", "expression": "1+1"}: the arguments sit beside the name
                rest = {k: v for k, v in obj.items() if k not in _NAME_KEYS and k not in ("type", "id")}
                args = rest or None
            return name, args
    return None, None


def _first(obj: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in obj:
            return obj[key]
    return None


def _next_open(text: str, i: int, hi: int) -> int:
    a = text.find("{", i, hi)
    b = text.find("[", i, hi)
    if a < 0:
        return b
    if b < 0:
        return a
    return min(a, b)


_DECODER = json.JSONDecoder()


def _loads(blob: str) -> Any:
    """Parse JSON leniently: strict JSON, then a Python literal with JSON words fixed.

    Handles single quotes, trailing commas, ``True``/``true``, unquoted keys. Returns None
    when nothing parses. Uses ``ast.literal_eval``, never ``eval``.
    """
    if not isinstance(blob, str):
        return None
    blob = blob.strip()
    if not blob or len(blob) > _MAX_BLOB:
        return None
    try:
        return json.loads(blob)
    except (ValueError, RecursionError):
        pass
    fixed = _PY_TOKENS.sub(_fix_token, blob)
    for candidate in (fixed, fixed.replace("\\'", "'")):
        try:
            return ast.literal_eval(candidate)
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            continue
    try:  # strict JSON after fixing only trailing commas (keeps JSON escapes like \u00e9)
        return json.loads(re.sub(r",(\s*[}\]])", r"\1", blob))
    except (ValueError, RecursionError):
        return None


def _fix_token(m: re.Match[str]) -> str:
    if m.group(1):
        return m.group(1)
    if m.group(2) is not None:
        return m.group(2)
    if m.group(3):
        return _PY_WORDS[m.group(3)]
    return f'{m.group(4)}"{m.group(5)}"{m.group(6)}'


_CALL_SHAPE = re.compile(
    r"<(?:tool_call|toolcall|function_call|tool_use)>|\[TOOL_CALLS\]|<\|python_tag\|>|\bfunctions\.[A-Za-z_]"
    r"|[{,]\s*[\"']?(?:" + "|".join(_NAME_KEYS) + r")[\"']?\s*:\s*[\"'][^\"']+[\"']",
    re.IGNORECASE,
)
_ARGS_SHAPE = re.compile(r"[\"']?(?:" + "|".join(_ARG_KEYS) + r")[\"']?\s*:\s*[{\[\"'\d]", re.IGNORECASE)


def looks_like_tool_call(text: str) -> bool:
    """Whether ``text`` is a tool call (for any tool name, bound or not) rather than prose.

    Used where a reply that names an unknown tool, or a call too broken to parse, must not be
    shown as the answer. A JSON object counts when it has a name-like key (``name``, ``tool``,
    ...) and an arguments-like key (``arguments``, ``input``, ...); call tags always count.

    >>> looks_like_tool_call('```json\\n{"name": "doctor_jones_update", "arguments": {"h": 9}}\\n```')
    True
    >>> looks_like_tool_call('{"name": "calc", "arguments": {"x": ')
    True
    >>> looks_like_tool_call("The answer is 391. Use {name} placeholders in templates.")
    False
    """
    head = text[:_MAX_BLOB]
    match = _CALL_SHAPE.search(head)
    if match is None:
        return False
    if match.group(0).lstrip().startswith(("{", ",")):
        return _ARGS_SHAPE.search(head, match.start()) is not None
    return True


TOOL_CALL_TAG = "<tool_call>"
"""The tag Qwen/Hermes chat templates (and chatloom's tool grammar) put around a call."""

# Literal text that opens a tool call, or code, wherever it appears while streaming: call tags
# (<tool_call>, <tool_use>, <function_call>, ...), chat-template markers (<|python_tag|>,
# <|tool_call|>, [TOOL_CALLS]) and code fences. Each call form _Parser reads starts with one of
# these, with JSON or ``functions.NAME`` (_OPENER_RE), or with a bound tool's ``NAME(``.
_CALL_OPENERS = ("```", "<tool", "<function", "<|", "[TOOL_CALLS]")
# `{` and `[` open a call only when JSON follows (`{"`, `{'`, an unquoted key `{name:`, `[{`,
# `[[`), so citation marks ("[1]") and prose braces ("{name} placeholders") keep streaming.
_OPENER_RE = re.compile(r"\{\s*[\"']|\{\s*[A-Za-z_][\w-]*\s*:|\[\s*[\[{]|\bfunctions\.[A-Za-z_]")
# The end of the text might still grow into such an opener: `{`, `{ name`, `[`, `func`.
_OPENER_TAIL_RE = re.compile(
    r"\{\s*(?:[A-Za-z_][\w-]*\s*)?$|\[\s*$|\b(?:"
    + "|".join(re.escape("functions."[:k]) for k in range(10, 0, -1))
    + ")$"
)
# A reply from chatloom's tool grammar (models.constrained) that starts with one of these took
# the grammar's call branch: all of it is the call.
_GRAMMAR_CALL_FIRST = ("{", "<")


def _call_start(text: str, literals: Collection[str], jsonish: bool) -> int | None:
    """Where the first call opener in ``text`` begins, or None."""
    starts = [i for i in (text.find(opener) for opener in literals) if i >= 0]
    if jsonish:
        match = _OPENER_RE.search(text)
        if match:
            starts.append(match.start())
    return min(starts, default=None)


def _open_tail(text: str, literals: Collection[str], jsonish: bool) -> int:
    """How many characters at the end of ``text`` might still become a call opener."""
    keep = max(
        (k for opener in literals for k in range(1, min(len(opener), len(text) + 1)) if text.endswith(opener[:k])),
        default=0,
    )
    if jsonish:
        tail = _OPENER_TAIL_RE.search(text)
        if tail:
            keep = max(keep, len(text) - tail.start())
    return keep


class CallHoldBack:
    """Streams model text through, holding it back from where a tool call may start.

    ``feed`` each streamed piece; it returns the text that may be shown now. Once a call opener
    appears (a call tag or marker, a code fence, JSON, ``functions.NAME``, or ``NAME(`` for a
    bound tool in ``tool_names``) nothing more is released: the caller parses the whole reply
    when it ends and shows :meth:`rest` only if it held no call after all. A partial opener at
    the end ("<tool_ca", "{") waits for the next piece.

    ``constrained``: the text comes from chatloom's tool grammar (``models.constrained``), where a
    call is either the whole reply (it starts with ``{`` or ``<``) or one ``<tool_call>`` after
    the answer, so nothing else in an answer needs holding.

    >>> hold = CallHoldBack(["calculator"])
    >>> [hold.feed(p) for p in ["Paris [1] is big. ", 'Now: {"name": ', '"calculator"}']]
    ['Paris [1] is big. ', 'Now: ', '']
    >>> hold.rest()
    '{"name": "calculator"}'
    """

    def __init__(self, tool_names: Collection[str] = (), *, constrained: bool = False) -> None:
        self.text = ""
        """Everything fed so far."""
        self._sent = 0
        self._holding = False
        self._constrained = constrained
        if constrained:
            self._literals: tuple[str, ...] = (TOOL_CALL_TAG,)
        else:
            self._literals = (*_CALL_OPENERS, *(f"{name}(" for name in tool_names if name))

    @property
    def holding(self) -> bool:
        """Whether a call opener has appeared: from there on nothing is released."""
        return self._holding

    @property
    def released(self) -> str:
        """The text released so far (a prefix of :attr:`text`)."""
        return self.text[: self._sent]

    def feed(self, piece: str) -> str:
        """Add ``piece``; return the text that may be shown now."""
        self.text += piece
        if self._holding or not self.text:
            return ""
        if self._constrained and self.text.startswith(_GRAMMAR_CALL_FIRST):
            self._holding = True
            return ""
        jsonish = not self._constrained
        # Released text holds no opener and ends in none that is partial, so only the rest
        # needs reading.
        pending = self.text[self._sent :]
        start = _call_start(pending, self._literals, jsonish)
        if start is not None:
            self._holding = True
            out = pending[:start]
        else:
            out = pending[: len(pending) - _open_tail(pending, self._literals, jsonish)]
        self._sent += len(out)
        return out

    def rest(self) -> str:
        """The text held back so far: a call, or (if the reply holds none) text still to show."""
        return self.text[self._sent :]


def opens_tool_call(text: str, tool_names: Collection[str] = ()) -> bool:
    """Whether ``text`` has begun a tool call or code (by :class:`CallHoldBack`'s openers).

    >>> opens_tool_call("So 3 + 4 ="), opens_tool_call("```python\\nx = 3 + 4 =")
    (False, True)
    """
    hold = CallHoldBack(tool_names)
    hold.feed(text)
    return hold.holding
