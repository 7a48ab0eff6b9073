"""The engine-independent half of chatloom's local chat models.

:class:`LocalChatModel` turns langchain messages and bound tools into chat-template input,
streams text from an engine (transformers or llama.cpp), holds back text that looks like a tool
call while streaming, and turns the finished text into ``AIMessage.tool_calls`` with
``usage_metadata``. An engine only implements ``_render`` and ``_generate_text``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Iterator, Sequence
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

from chatloom.models._engine import Piece, Prepared
from chatloom.models.toolcalls import CallHoldBack, parse_tool_calls

__all__ = ["LocalChatModel", "Piece", "Prepared"]


_TOOL_SYSTEM_PROMPT = """\
You can call these tools:
{tools}

To call a tool, reply with only a JSON object of the form
{{"name": "<tool name>", "arguments": {{<arguments>}}}}
and nothing else. Otherwise answer the user directly."""


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
    return {t["function"]["name"]: list((t["function"].get("parameters") or {}).get("properties", {})) for t in tools}


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

    def bind_tools(
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
        holdback = CallHoldBack(_tool_names(prepared.bound), constrained=prepared.grammar is not None)
        last = Piece("")
        for piece in self._decode(prepared):
            if piece.done:
                last = piece
            if not piece.text:
                continue
            if first is None:
                first = time.perf_counter()
            delta = holdback.feed(piece.text)
            if delta:
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                if run_manager:
                    run_manager.on_llm_new_token(delta, chunk=chunk)
                yield chunk
        text = holdback.text
        content, calls = self._finish(text, prepared)
        streamed = holdback.released.strip()
        if not holdback.released:
            rest = content
        elif not calls:
            rest = holdback.rest().rstrip()  # held back but no call after all: show it as it was
        else:
            # What was shown stays shown; add whatever visible text the parser kept beyond it.
            rest = content[len(streamed) :] if content.startswith(streamed) else ""
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
        stream: Generator[Piece, None, None]
        if self._calculates_inline(prepared):
            from chatloom.models._inline_calculator import decode_calculating

            stream = decode_calculating(self._generate_text, prepared, _tool_names(prepared.bound))
        else:
            stream = self._generate_text(prepared)
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
            stream.close()  # stops the engine mid-reply and releases its lock

    # ------------------------------------------------------------------ inline calculator

    def _calculates_inline(self, prepared: Prepared) -> bool:
        if prepared.grammar is not None:  # a forced call: JSON, not prose
            return False
        if self.inline_calculator is not None:
            return self.inline_calculator
        return "calculator" in _tool_names(prepared.bound)

    # ------------------------------------------------------------------ engine hooks

    def _generate_text(self, prepared: Prepared) -> Generator[Piece, None, None]:  # pragma: no cover
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
                    out.append(
                        {
                            "role": "assistant",
                            "content": text,
                            "tool_calls": [
                                {
                                    "type": "function",
                                    "id": c.get("id"),
                                    "function": {"name": c["name"], "arguments": c["args"]},
                                }
                                for c in calls
                            ],
                        }
                    )
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
            json.dumps(
                {
                    "name": t["function"]["name"],
                    "description": t["function"].get("description", ""),
                    "parameters": t["function"].get("parameters", {}),
                }
            )
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
            "tokens_per_second": round(last.output_tokens / gen_time, 2)
            if gen_time > 0 and last.output_tokens
            else None,
            **({"calculations": last.calculations} if last.calculations else {}),
        }
