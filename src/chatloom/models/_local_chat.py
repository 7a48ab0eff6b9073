"""The engine-independent half of chatloom's local chat models.

:class:`LocalChatModel` turns langchain messages and bound tools into chat-template input,
streams text from an engine (transformers or llama.cpp), holds back text that looks like a tool
call while streaming, and turns the finished text into ``AIMessage.tool_calls`` with
``usage_metadata``. An engine only implements ``_render`` and ``_generate_text``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool

# Text that may start a tool call: while streaming, text from here on is held back until the
# reply is complete and parsed, so a call never flashes up as prose.
_CALL_OPENERS = ("<tool_call>", "```", "{", "[TOOL_CALLS]", "<|python_tag|>")

MAX_CALCULATIONS = 32  # numbers the inline calculator may correct in one reply


def _holds_call(text: str) -> bool:
    """Whether ``text`` has begun a tool call or code, where "=" is not arithmetic prose."""
    return any(opener in text for opener in _CALL_OPENERS)


_TOOL_SYSTEM_PROMPT = """\
You can call these tools:
{tools}

To call a tool, reply with only a JSON object of the form
{{"name": "<tool name>", "arguments": {{<arguments>}}}}
and nothing else. Otherwise answer the user directly."""


@dataclass
class Piece:
    """A piece of generated text from an engine; the last one carries the totals."""

    text: str
    done: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None
    calculations: int = 0  # the model's numbers the calculator corrected (inline_calculator)


_LOOP_MIN_CHARS = 48
_LOOP_MIN_REPEATS = 8


def _loops(text: str) -> bool:
    """Whether ``text`` ends in one short unit (up to 40 characters, with a letter or digit)
    written at least 8 times over at least 48 characters: a degenerate loop, not prose.

    Units without a letter or digit ("|---", "=====") are left alone: tables and rules repeat.

    >>> _loops("주소는 서울시 " + "100번길 " * 8), _loops("| a | b | " + "|---" * 20)
    (True, False)
    """
    tail = text[-400:]
    for size in range(1, 41):
        repeats = max(_LOOP_MIN_REPEATS, -(-_LOOP_MIN_CHARS // size))
        span = size * repeats
        if span > len(tail):
            break
        unit = tail[-size:]
        if tail[-span:] == unit * repeats and any(ch.isalnum() for ch in unit):
            return True
    return False


@dataclass
class Prepared:
    """Everything an engine needs for one call."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    """Tools for the chat template (empty when the template can't render tools)."""
    bound: list[dict[str, Any]]
    """Every bound tool (OpenAI format)."""
    tool_choice: Any
    grammar: Any  # chatloom.models.constrained.ToolGrammar | None
    stop: list[str]
    max_tokens: int
    extra: dict[str, Any] = field(default_factory=dict)
    prefix: str = ""
    """Reply text already written; the engine continues it (used by the inline calculator)."""


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


def _tool_names(tools: Sequence[dict[str, Any]]) -> list[str]:
    return [t["function"]["name"] for t in tools]


def _param_names(tools: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    return {
        t["function"]["name"]: list((t["function"].get("parameters") or {}).get("properties", {}))
        for t in tools
    }


def _hold_from(text: str, openers: Sequence[str] = _CALL_OPENERS) -> int:
    """Index from which ``text`` must be held back while streaming (len(text) if none)."""
    cut = len(text)
    for opener in openers:
        i = text.find(opener)
        if i != -1:
            cut = min(cut, i)
    # A partial opener at the very end ("<tool_ca") might still become one.
    for opener in openers:
        for k in range(min(len(opener) - 1, len(text)), 0, -1):
            if text.endswith(opener[:k]):
                cut = min(cut, len(text) - k)
                break
    return cut


class LocalChatModel(BaseChatModel):
    """Shared behaviour of the local engines; not used directly."""

    model_path: str
    """A GGUF file or a Hugging Face model dir."""
    model_name: str | None = None
    """The catalog name, when the model came from the catalog."""
    max_tokens: int = 512
    temperature: float = 0.0
    """0 means greedy decoding (deterministic)."""
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] | None = None
    constrained: bool | None = None
    """Constrain tool calls with a grammar built from the bound tools' JSON schemas. None
    (default) means: when a call is forced (``tool_choice`` "required" or a tool name) and the
    grammar engine is installed; True also constrains answer-or-call ("auto")."""
    tool_max_tokens: int = 256
    """The least token budget of a call with tools bound (a truncated call is useless)."""
    inline_calculator: bool | None = None
    """Let the calculator write the number after each ``=`` the model writes in its text
    ("16 - 3 - 4 =" -> " 9"), so an arithmetic slip never reaches the next step. None (default)
    means on when a tool named ``calculator`` is bound; True and False force it on or off."""

    inline_tools: tuple[str, ...] = ()
    """Bound tools the engine applies inside the text instead of offering them as calls
    (``"calculator"``: the inline calculator). Their descriptions are left out of the prompt:
    with a tool list, Qwen 0.5B invented tools and answered worse than with none (issue 10).
    Set by the model profile; a forced ``tool_choice`` still offers every tool."""

    engine_name: str = "local"

    # ------------------------------------------------------------------ langchain interface

    @property
    def _llm_type(self) -> str:
        return f"chatloom-{self.engine_name}"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "engine": self.engine_name, "max_tokens": self.max_tokens}

    def bind_tools(  # type: ignore[override]
        self,
        tools: Sequence[Any],
        *,
        tool_choice: Any = None,
        constrained: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Bind tools (langchain tools, functions, pydantic models or OpenAI tool dicts).

        ``tool_choice``: None/"auto" (answer or call), "required"/"any" (must call), a tool
        name (must call that one) or "none". ``constrained`` overrides the model's setting.
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        if isinstance(tool_choice, dict):
            tool_choice = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        if tool_choice is True:
            tool_choice = "required"
        bound: dict[str, Any] = {"tools": formatted, "tool_choice": tool_choice, **kwargs}
        if constrained is not None:
            bound["constrained"] = constrained
        return self.bind(**bound)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        prepared = self._prepare(messages, stop, kwargs)
        started = time.perf_counter()
        first: float | None = None
        texts: list[str] = []
        last = Piece("")
        for piece in self._decode(prepared):
            if piece.text:
                if first is None:
                    first = time.perf_counter()
                texts.append(piece.text)
            if piece.done:
                last = piece
        text = "".join(texts)
        content, calls = self._finish(text, prepared)
        meta = self._response_metadata(last, started, first, bool(calls))
        message = AIMessage(
            content=content,
            tool_calls=calls,
            usage_metadata=self._usage(last),
            response_metadata=meta,
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        prepared = self._prepare(messages, stop, kwargs)
        started = time.perf_counter()
        first: float | None = None
        text = ""
        sent = 0  # characters of `text` already yielded as content
        last = Piece("")
        for piece in self._decode(prepared):
            if piece.done:
                last = piece
            if not piece.text:
                continue
            if first is None:
                first = time.perf_counter()
            text += piece.text
            if prepared.grammar is not None and prepared.grammar.is_text(text):
                # In the answer branch only a tagged call can follow; nothing else is held.
                cut = _hold_from(text, ("<tool_call>",)) if prepared.grammar.tags else len(text)
            else:
                cut = _hold_from(text)
            if cut > sent:
                delta = text[sent:cut]
                sent = cut
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                if run_manager:
                    run_manager.on_llm_new_token(delta, chunk=chunk)
                yield chunk
        content, calls = self._finish(text, prepared)
        streamed = text[:sent].strip()
        if not sent:
            rest = content
        elif not calls:
            rest = text[sent:].rstrip()  # held back but no call after all: show it as it was
        else:
            # What was shown stays shown; add whatever visible text the parser kept beyond it.
            rest = content[len(streamed):] if content.startswith(streamed) else ""
        final = AIMessageChunk(
            content=rest,
            tool_call_chunks=[
                {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i, "type": "tool_call_chunk"}
                for i, c in enumerate(calls)
            ],
            usage_metadata=self._usage(last),
            response_metadata=self._response_metadata(last, started, first, bool(calls)),
            chunk_position="last",
        )
        chunk = ChatGenerationChunk(message=final)
        if run_manager and rest:
            run_manager.on_llm_new_token(rest, chunk=chunk)
        yield chunk

    # ------------------------------------------------------------------ decoding

    def _decode(self, prepared: Prepared) -> Iterator[Piece]:
        """The engine's text, stopped where it starts repeating itself (see :func:`_loops`)."""
        text, produced = "", 0
        stream = self._decode_calculating(prepared)
        try:
            for piece in stream:
                yield piece
                if piece.done:
                    return
                text += piece.text
                produced += 1
                if _loops(text):
                    # Small models fall into loops ("[1] [1] [1] ...", "100번길 100번길 ...")
                    # and would spend the whole token budget (30-50 s on the 0.5B) on them.
                    yield Piece("", done=True, output_tokens=produced, finish_reason="repetition")
                    return
        finally:
            stream.close()

    # ------------------------------------------------------------------ inline calculator

    def _decode_calculating(self, prepared: Prepared) -> Iterator[Piece]:
        """The engine's text; with the inline calculator on, each equation's result is checked.

        Where the model's result after an equation's "=" departs from the calculator's
        ("so she has 16 - 3 - 4 = 8"), generation stops, the calculator's result is written
        and the engine continues from there, so the model builds on the right number. A reply
        whose arithmetic is right is left exactly as the model wrote it (see EquationReader).
        """
        if not self._calculates_inline(prepared):
            yield from self._generate_text(prepared)
            return
        from chatloom.models._inline_calculator import EquationReader

        text, produced, calculations = "", 0, 0
        after_result = False  # the reply so far ends in a result the calculator corrected

        def can_calculate(text_so_far: str) -> bool:
            return calculations < MAX_CALCULATIONS and not _holds_call(text_so_far)

        while True:
            segment = replace(prepared, prefix=text, max_tokens=max(prepared.max_tokens - produced, 1))
            stream = self._generate_text(segment)
            reader = EquationReader(text, after_result=after_result, can_calculate=can_calculate)
            correction: str | None = None
            last = Piece("", done=True)
            try:
                for piece in stream:
                    if piece.done:
                        last = piece
                        owed = reader.end()
                        if owed:
                            text += owed
                            yield Piece(owed)
                        break
                    produced += 1
                    step = reader.feed(piece.text)
                    if step.passed:
                        text += step.passed
                        yield Piece(step.passed)
                    if step.correction is not None:
                        correction, after_result = step.correction, step.ends_in_result
                        break
            finally:
                stream.close()  # stops the engine mid-reply and releases its lock
            if correction is None:
                # The last segment's prompt held the text written so far: count that as output
                # (approximately: one token per piece, one per corrected number).
                earlier = produced - last.output_tokens + calculations
                yield replace(last, input_tokens=max(last.input_tokens - earlier, 0),
                              output_tokens=produced + calculations, calculations=calculations)
                return
            if after_result:
                calculations += 1
            if correction:
                text += correction
                yield Piece(correction)
            if produced >= prepared.max_tokens:
                yield Piece("", done=True, output_tokens=produced, finish_reason="length", calculations=calculations)
                return

    def _calculates_inline(self, prepared: Prepared) -> bool:
        if prepared.grammar is not None:  # a forced call: JSON, not prose
            return False
        if self.inline_calculator is not None:
            return self.inline_calculator
        return "calculator" in _tool_names(prepared.bound)

    # ------------------------------------------------------------------ engine hooks

    def _generate_text(self, prepared: Prepared) -> Iterator[Piece]:  # pragma: no cover
        raise NotImplementedError

    def _chat_template(self) -> str | None:  # pragma: no cover
        raise NotImplementedError

    def _grammar_available(self) -> bool:  # pragma: no cover
        return False

    # ------------------------------------------------------------------ shared logic

    def _template_supports_tools(self) -> bool:
        template = self._chat_template() or ""
        return "tools" in template

    def _prepare(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> Prepared:
        tools = list(kwargs.pop("tools", None) or [])
        tool_choice = kwargs.pop("tool_choice", None)
        constrained = kwargs.pop("constrained", self.constrained)
        max_tokens = int(kwargs.pop("max_tokens", self.max_tokens))
        if tool_choice == "none":
            tools = []
        bound = tools
        if tool_choice in (None, "auto") and self.inline_tools:
            tools = [t for t in tools if t["function"]["name"] not in self.inline_tools]
        grammar = None
        if tools:
            if constrained is None:
                # By default only a forced call is constrained. With answer-or-call ("auto"), the
                # grammar made Qwen 0.5B call tools on 0 of 12 GSM8K prompts (free decoding plus
                # the tolerant parser: 3 of 12; bench_toolcall_validity.py). Speed is no longer the
                # reason: llama.cpp's grammar now runs at 0.92x free decoding (bench_grammar_speed.py).
                constrained = tool_choice not in (None, "auto") and self._grammar_available()
            if constrained:
                from chatloom.models.constrained import build_tool_grammar

                grammar = build_tool_grammar(tools, tool_choice, tags=self._template_supports_tools())
            # A call cut off by the token limit is no call at all: give calls room.
            max_tokens = max(max_tokens, self.tool_max_tokens)
        native = self._template_supports_tools()
        chat = self._to_dicts(messages, native=native)
        if tools and not native:
            chat = self._inject_tool_prompt(chat, tools)
        return Prepared(
            messages=chat,
            tools=tools if native else [],
            bound=bound,
            tool_choice=tool_choice,
            grammar=grammar,
            stop=list(stop or self.stop or []),
            max_tokens=max_tokens,
            extra=kwargs,
        )

    @staticmethod
    def _to_dicts(messages: list[BaseMessage], *, native: bool) -> list[dict[str, Any]]:
        """Langchain messages -> chat-template dicts (OpenAI shape, arguments as dicts)."""
        out: list[dict[str, Any]] = []
        for m in messages:
            text = _text_of(m.content)
            if isinstance(m, SystemMessage):
                out.append({"role": "system", "content": text})
            elif isinstance(m, HumanMessage):
                out.append({"role": "user", "content": text})
            elif isinstance(m, AIMessage):
                calls = m.tool_calls or []
                if calls and native:
                    out.append({
                        "role": "assistant",
                        "content": text,
                        "tool_calls": [
                            {"type": "function", "id": c.get("id"),
                             "function": {"name": c["name"], "arguments": c["args"]}}
                            for c in calls
                        ],
                    })
                elif calls:
                    written = "\n".join(json.dumps({"name": c["name"], "arguments": c["args"]}) for c in calls)
                    out.append({"role": "assistant", "content": (text + "\n" + written).strip()})
                else:
                    out.append({"role": "assistant", "content": text})
            elif isinstance(m, ToolMessage):
                if native:
                    out.append({"role": "tool", "content": text, "name": m.name, "tool_call_id": m.tool_call_id})
                else:
                    label = f" {m.name}" if m.name else ""
                    out.append({"role": "user", "content": f"Result of tool{label}: {text}"})
            else:
                out.append({"role": getattr(m, "role", "user"), "content": text})
        return out

    @staticmethod
    def _inject_tool_prompt(chat: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        described = "\n".join(
            json.dumps({
                "name": t["function"]["name"],
                "description": t["function"].get("description", ""),
                "parameters": t["function"].get("parameters", {}),
            })
            for t in tools
        )
        note = _TOOL_SYSTEM_PROMPT.format(tools=described)
        if chat and chat[0]["role"] == "system":
            return [{"role": "system", "content": chat[0]["content"].rstrip() + "\n\n" + note}, *chat[1:]]
        return [{"role": "system", "content": note}, *chat]

    def _finish(self, text: str, prepared: Prepared) -> tuple[str, list[dict[str, Any]]]:
        """Finished text -> (visible content, tool calls)."""
        if not prepared.bound:
            return text.strip(), []
        if prepared.grammar is not None:
            return prepared.grammar.parse(text)
        from chatloom.models.toolcalls import parse_tool_calls

        return parse_tool_calls(text, _tool_names(prepared.bound), _param_names(prepared.bound))

    def _usage(self, last: Piece) -> dict[str, int]:
        return {
            "input_tokens": last.input_tokens,
            "output_tokens": last.output_tokens,
            "total_tokens": last.input_tokens + last.output_tokens,
        }

    def _response_metadata(self, last: Piece, started: float, first: float | None, called: bool) -> dict[str, Any]:
        elapsed = time.perf_counter() - started
        gen_time = elapsed - ((first - started) if first else 0.0)
        return {
            "model_name": self.model_name or self.model_path,
            "engine": self.engine_name,
            "finish_reason": "tool_calls" if called else (last.finish_reason or "stop"),
            "time_to_first_token_s": round((first - started), 4) if first else None,
            "tokens_per_second": round(last.output_tokens / gen_time, 2) if gen_time > 0 and last.output_tokens else None,
            **({"calculations": last.calculations} if last.calculations else {}),
        }
