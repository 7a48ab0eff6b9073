"""Constrained decoding: the bound tools' JSON schemas become a grammar the model must follow.

The grammar lets the model choose between two things:

- **an answer**: plain text whose first character is not ``{``, ``<``, a backtick or
  whitespace (so a call can never hide in a code fence or after a blank line); with
  tag-style templates the answer may end in one tagged call (``Let me compute.
  <tool_call>...</tool_call>``), and it can never contain ``<t`` otherwise; or
- **one tool call**: the JSON object ``{"name": "<declared tool>", "arguments": {...}}``, where
  ``arguments`` must be valid against that tool's parameter schema. For models whose chat
  template speaks Qwen/Hermes tool format the object may be wrapped in
  ``<tool_call>\\n ... \\n</tool_call>``.

``tool_choice="required"`` (or ``"any"``) drops the answer branch; a tool name keeps only that
tool. The grammars come from maintained engines, never hand-written parsers: xgrammar
(``Grammar.from_json_schema``) for transformers and llama.cpp's JSON-schema-to-GBNF converter
for llama-cpp-python.

>>> g = build_tool_grammar([{"type": "function", "function": {"name": "calculator",
...     "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
...                    "required": ["expression"]}}}], None)
>>> g.parse('{"name": "calculator", "arguments": {"expression": "17*23"}}')[1][0]["args"]
{'expression': '17*23'}
>>> g.parse("It is 391.")
('It is 391.', [])
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

from chatloom.errors import ChatloomError, install_hint
from chatloom.models.toolcalls import TOOL_CALL_TAG, new_call_id

TAG_OPEN = TOOL_CALL_TAG + "\n"
TAG_CLOSE = "\n</" + TOOL_CALL_TAG[1:]
# A plain answer's first character is anything but what could start a call or hide one
# ("{", "<", a backtick, whitespace), so an output starting with "{" or "<" is a call: the
# streaming hold-back (toolcalls.CallHoldBack, constrained=True) relies on that.
_TEXT_EBNF = r"root ::= [^{<` \t\n\r] [^]*"
# With tag-style calls an answer may end in one call ("Let me compute. <tool_call>..."):
# the answer text can never contain "<t", so "<tool_call>" can only open a checked call.
_TAGGED_TEXT_EBNF = r'root ::= [^{<` \t\n\r] ([^<] | "<"+ [^<t])* "<"*'
_TEXT_GBNF = r"chatloom-text ::= [^{<` \t\n\r] [^\x00]*"
_TAGGED_TEXT_GBNF = r'chatloom-ttext ::= [^{<` \t\n\r] ([^<] | "<"+ [^<t])* "<"*'


def _arguments_schema(parameters: dict[str, Any] | None) -> dict[str, Any]:
    schema = copy.deepcopy(parameters or {})
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    if schema.get("type") == "object":
        # Unknown keys would make a "valid" call that the tool rejects.
        schema.setdefault("additionalProperties", False)
    schema.pop("title", None)
    return schema


@dataclass
class ToolGrammar:
    """A grammar for "answer or call one of these tools", renderable for each engine."""

    tool_names: list[str]
    call_schema: dict[str, Any]
    allow_text: bool = True
    tags: bool = False
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def key(self) -> str:
        return json.dumps([self.call_schema, self.allow_text, self.tags], sort_keys=True)

    # -- engines --------------------------------------------------------------------------

    def xgrammar(self) -> Any:
        """The grammar as an ``xgrammar.Grammar`` (for the transformers engine)."""
        if "xgr" in self._cache:
            return self._cache["xgr"]
        try:
            import xgrammar as xgr
        except ImportError:
            raise ChatloomError(
                "constrained decoding needs xgrammar, which is not installed", install_hint("local", "xgrammar")
            ) from None
        call = xgr.Grammar.from_json_schema(json.dumps(self.call_schema), any_whitespace=False)
        if self.tags:
            tagged = xgr.Grammar.concat(
                xgr.Grammar.from_ebnf(f"root ::= {json.dumps(TAG_OPEN)}"),
                call,
                xgr.Grammar.from_ebnf(f"root ::= {json.dumps(TAG_CLOSE)}"),
            )
            call = xgr.Grammar.union(call, tagged)
        if self.allow_text and self.tags:
            text = xgr.Grammar.from_ebnf(_TAGGED_TEXT_EBNF)
            text_then_call = xgr.Grammar.concat(text, tagged)
            grammar = xgr.Grammar.union(call, text_then_call, text)
        elif self.allow_text:
            grammar = xgr.Grammar.union(call, xgr.Grammar.from_ebnf(_TEXT_EBNF))
        else:
            grammar = call
        self._cache["xgr"] = grammar
        return grammar

    def gbnf(self) -> str:
        """The grammar as llama.cpp GBNF text (for the llama-cpp-python engine)."""
        if "gbnf" in self._cache:
            return self._cache["gbnf"]
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        converted = json_schema_to_gbnf(json.dumps(self.call_schema))
        # The converter names its start rule `root`; rename it so it can be one branch of ours.
        # Our own rules carry a `chatloom-` prefix: the converter names rules after properties.
        body, n = re.subn(r"(?m)^root\s*::=", "chatloom-call-json ::=", converted)
        # llama-cpp-python's converter lets raw control characters into strings (SmolLM2 wrote a
        # newline inside "expression", which is invalid JSON); JSON and llama.cpp's own converter
        # exclude them.
        body = body.replace('char ::= [^"\\\\]', 'char ::= [^"\\\\\\x7F\\x00-\\x1F]')
        if n != 1:  # pragma: no cover - a converter change we must notice
            raise ChatloomError(
                "llama.cpp's JSON-schema converter returned an unexpected grammar",
                "report this with your llama-cpp-python version",
            )
        alts = ["chatloom-call-json"]
        rules = [body]
        if self.tags:
            alts.append("chatloom-tagged")
            rules.append(f"chatloom-tagged ::= {_gbnf_literal(TAG_OPEN)} chatloom-call-json {_gbnf_literal(TAG_CLOSE)}")
        rules.insert(0, f"chatloom-call ::= {' | '.join(alts)}")
        if self.allow_text and self.tags:
            rules.insert(0, "root ::= chatloom-call | chatloom-ttext | chatloom-ttext chatloom-tagged")
            rules.append(_TAGGED_TEXT_GBNF)
        elif self.allow_text:
            rules.insert(0, "root ::= chatloom-call | chatloom-text")
            rules.append(_TEXT_GBNF)
        else:
            rules.insert(0, "root ::= chatloom-call")
        text = "\n".join(rules) + "\n"
        self._cache["gbnf"] = text
        return text

    # -- results ---------------------------------------------------------------------------

    def parse(self, text: str) -> tuple[str, list[dict[str, Any]]]:
        """Constrained output -> (content, tool calls). A call is returned only if it parses
        and names a declared tool (true for every complete constrained output)."""
        # Not looks_like_tool_call or CallHoldBack: this reads which branch of this grammar the
        # output took, and the grammar allows a call in exactly these two shapes.
        body = text.strip()
        prefix = ""
        close = TAG_CLOSE.strip()
        if self.tags and self.allow_text and not body.startswith(("{", TOOL_CALL_TAG)) and TOOL_CALL_TAG in body:
            prefix, _, rest = body.partition(TOOL_CALL_TAG)
            prefix, body = prefix.strip(), TOOL_CALL_TAG + rest
        if not body.startswith(("{", TOOL_CALL_TAG)):
            return body, []
        if body.startswith(TOOL_CALL_TAG):
            body = body[len(TOOL_CALL_TAG) :]
            if body.rstrip().endswith(close):
                body = body.rstrip()[: -len(close)]
        try:
            obj = json.loads(body)
        except ValueError:
            return text.strip(), []  # cut off by max_tokens: not a valid call
        if not isinstance(obj, dict) or obj.get("name") not in self.tool_names:
            return text.strip(), []
        args = obj.get("arguments")
        if not isinstance(args, dict):
            return text.strip(), []
        return prefix, [{"name": obj["name"], "args": args, "id": new_call_id(), "type": "tool_call"}]


def _gbnf_literal(s: str) -> str:
    return json.dumps(s)


def build_tool_grammar(tools: list[dict[str, Any]], tool_choice: Any, *, tags: bool = False) -> ToolGrammar | None:
    """The grammar for OpenAI-format ``tools`` under ``tool_choice``; None if nothing to constrain.

    ``tool_choice``: None/"auto" (answer or call), "required"/"any" (must call), a tool name
    (must call that tool), "none" (no grammar).
    """
    if not tools or tool_choice == "none":
        return None
    funcs = [t.get("function", t) for t in tools]
    allow_text = tool_choice in (None, "auto")
    if isinstance(tool_choice, str) and tool_choice not in ("auto", "required", "any"):
        funcs = [f for f in funcs if f["name"] == tool_choice]
        if not funcs:
            raise ChatloomError(
                f"tool_choice {tool_choice!r} names no bound tool",
                f"use one of: {', '.join(t['function']['name'] for t in tools)}",
            )
    branches = [
        {
            "type": "object",
            "properties": {"name": {"const": f["name"]}, "arguments": _arguments_schema(f.get("parameters"))},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for f in funcs
    ]
    schema = branches[0] if len(branches) == 1 else {"anyOf": branches}
    return ToolGrammar([f["name"] for f in funcs], schema, allow_text=allow_text, tags=tags)


def validate_call(call: dict[str, Any], tools: list[dict[str, Any]]) -> bool:
    """Whether a parsed tool call names a declared tool and its args match the schema.

    Uses ``jsonschema`` when installed, else checks required keys and basic types.
    """
    funcs = {f["name"]: f for f in (t.get("function", t) for t in tools)}
    func = funcs.get(call.get("name"))
    if func is None or not isinstance(call.get("args"), dict):
        return False
    schema = _arguments_schema(func.get("parameters"))
    try:
        import jsonschema
    except ImportError:
        return _basic_valid(call["args"], schema)
    try:
        jsonschema.validate(call["args"], schema)
    except jsonschema.ValidationError:
        return False
    return True


_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
}


def _basic_valid(args: dict[str, Any], schema: dict[str, Any]) -> bool:
    props = schema.get("properties", {})
    if any(k not in args for k in schema.get("required", [])):
        return False
    if schema.get("additionalProperties") is False and any(k not in props for k in args):
        return False
    for k, v in args.items():
        t = props.get(k, {}).get("type")
        if isinstance(t, str) and t in _TYPES and not isinstance(v, _TYPES[t]):
            return False
    return True


def llama_tokenizer_info(llm: Any) -> Any:
    """xgrammar's view of a llama.cpp vocabulary: each token's raw bytes.

    llama-cpp-python 0.3.x applies a GBNF grammar to every vocabulary entry at every step; on
    these 2-core machines that measured about 0.9 s per token for SmolLM2 (one 18-token call
    took 16 s), and its Python logits-processor hook hands over a strided candidate view that
    does not line up with token ids. The llama engine therefore runs its own decode loop with
    xgrammar's precomputed token masks when xgrammar is installed, and GBNF otherwise.
    """
    import xgrammar as xgr

    n = llm.n_vocab()
    vocab = [llm.detokenize([i], special=True) for i in range(n)]
    import llama_cpp

    stops = [i for i in range(n) if llama_cpp.llama_vocab_is_eog(llm._model.vocab, i)] or [llm.token_eos()]
    return xgr.TokenizerInfo(vocab, xgr.VocabType.RAW, vocab_size=n, stop_token_ids=stops)
