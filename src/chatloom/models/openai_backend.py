"""``openai:<model>``: OpenAI, or any OpenAI-compatible server (vLLM, Ollama, llama.cpp server).

Built on langchain-openai's ``ChatOpenAI`` (chat completions API) and adds what chatloom needs:

- one-line :class:`~chatloom.errors.BackendError`\\ s for a bad key (401), a dead server, a
  missing model (404), rate limits and timeouts, instead of SDK tracebacks; the API key never
  appears in them;
- retries with exponential backoff on 408/409/429/5xx, connection errors and timeouts (the
  openai SDK's ``max_retries``: 0.5 s doubling to at most 8 s, with jitter, honouring
  ``Retry-After``), and a per-call ``timeout``;
- token usage on every reply, including streamed ones (``stream_usage``), and ``cost_usd`` in
  ``response_metadata`` when the model's price is known (:mod:`chatloom.models.pricing`);
- tool calls recovered from the reply text when a local server returns none
  (``python -m llama_cpp.server`` leaves Qwen's ``<tool_call>`` text in ``content``).

>>> from chatloom.models import resolve_model
>>> model = resolve_model("openai:qwen", base_url="http://127.0.0.1:8000/v1")  # connects on first call
>>> model.endpoint
'http://127.0.0.1:8000/v1'

``resolve_model("openai:gpt-4o-mini")`` does the same for api.openai.com, with ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import openai
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from chatloom.errors import BackendError, ConfigError, ModelNotFound
from chatloom.models.pricing import cost_usd, price_for
from chatloom.models.toolcalls import CallHoldBack, parse_tool_calls

__all__ = ["ChatloomOpenAI", "create_openai_model"]

OPENAI_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
# Local servers ignore the key, but the SDK refuses to start without one.
_DUMMY_KEY = "sk-no-key-required"


def create_openai_model(
    name: str,
    *,
    settings: Any = None,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_retries: int = DEFAULT_MAX_RETRIES,
    recover_tool_calls: bool = True,
    **options: Any,
) -> ChatloomOpenAI:
    """Factory behind ``openai:<name>``.

    The endpoint is ``base_url``, else ``settings.openai_base_url``
    (``CHATLOOM_OPENAI_BASE_URL``), else ``OPENAI_BASE_URL``, else api.openai.com. The key is
    ``api_key`` or ``OPENAI_API_KEY``; a custom endpoint without a key gets a dummy one.
    ``timeout`` (seconds) bounds each request attempt; ``max_retries`` retries on 429, 5xx,
    timeouts and connection errors. Other ``options`` (``temperature``, ``max_tokens``, ...)
    go to ``ChatOpenAI``.
    """
    name = (name or "").strip()
    if not name:
        raise ModelNotFound("'openai:' needs a model name", "use e.g. 'openai:gpt-4o-mini'")
    base_url = base_url or getattr(settings, "openai_base_url", None) or os.environ.get("OPENAI_BASE_URL") or None
    if base_url is not None:
        base_url = base_url.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", base_url):
            raise ConfigError(
                f"OpenAI base URL {base_url!r} is not an http(s) URL",
                "set CHATLOOM_OPENAI_BASE_URL to e.g. http://127.0.0.1:8000/v1",
            )
    key = api_key or os.environ.get("OPENAI_API_KEY") or None
    if key is None:
        if base_url is None:
            raise ConfigError(
                f"OPENAI_API_KEY is not set, so 'openai:{name}' can't use api.openai.com",
                "export OPENAI_API_KEY=sk-..., or set CHATLOOM_OPENAI_BASE_URL to a local OpenAI-compatible server",
            )
        key = _DUMMY_KEY
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"timeout {timeout!r} must be a positive number of seconds", "pass e.g. timeout=60")
    options.setdefault("use_responses_api", False)  # what compatible servers speak
    options.setdefault("stream_usage", True)
    # Look the price up now, while the model loads (in the background in the REPL): the first
    # lookup reads genai-prices' data, which made the first answer 0.13 s slower after Enter.
    price_for(name)
    return ChatloomOpenAI(
        model=name,
        base_url=base_url,
        api_key=key,
        timeout=timeout,
        max_retries=max_retries,
        recover_tool_calls=recover_tool_calls,
        **options,
    )


class ChatloomOpenAI(ChatOpenAI):
    """``ChatOpenAI`` with chatloom's errors, costs and tool-call recovery."""

    recover_tool_calls: bool = True
    """Parse tool calls out of the text when the server returns no structured ones."""

    @property
    def _llm_type(self) -> str:
        return "chatloom-openai"

    # -- calls ----------------------------------------------------------------------------------
    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        with self._errors(kwargs.get("timeout")):
            result = super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        return self._finish(result, kwargs)

    async def _agenerate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        with self._errors(kwargs.get("timeout")):
            result = await super()._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)
        return self._finish(result, kwargs)

    # The base class fires on_llm_new_token for each chunk we yield; passing run_manager=None
    # down keeps the SDK loop from also announcing the raw, held-back call text.
    def _stream(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        fixer = _StreamFixer(self, kwargs)
        with self._errors(kwargs.get("timeout"), fixer):
            for chunk in super()._stream(messages, stop=stop, run_manager=None, **kwargs):
                yield fixer.feed(chunk)
        fixer.check_complete()
        last = fixer.finish()
        if last is not None:
            yield last

    async def _astream(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        fixer = _StreamFixer(self, kwargs)
        with self._errors(kwargs.get("timeout"), fixer):
            async for chunk in super()._astream(messages, stop=stop, run_manager=None, **kwargs):
                yield fixer.feed(chunk)
        fixer.check_complete()
        last = fixer.finish()
        if last is not None:
            yield last

    def _get_request_payload(self, input_: Any, *, stop: Any = None, **kwargs: Any) -> dict:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        if self.openai_api_base:
            # An assistant turn that only called tools is sent with `content: null`. OpenAI
            # takes that, but llama_cpp.server rejects it (HTTP 500, "Input should be a valid
            # string"), which breaks every turn after a tool call. "" means the same.
            for message in payload.get("messages") or []:
                if isinstance(message, dict) and message.get("role") == "assistant" and message.get("content") is None:
                    message["content"] = ""
        return payload

    # -- helpers --------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """The base URL requests go to."""
        return (self.openai_api_base or OPENAI_URL).rstrip("/")

    def _finish(self, result: ChatResult, kwargs: dict[str, Any]) -> ChatResult:
        names, params = _bound_tools(kwargs) if self.recover_tool_calls else ([], {})
        generations = []
        for gen in result.generations:
            message = gen.message
            if isinstance(message, AIMessage):
                update: dict[str, Any] = {}
                if names and not message.tool_calls and isinstance(message.content, str):
                    content, calls = parse_tool_calls(message.content, names, params)
                    if calls:
                        update["content"] = content
                        update["tool_calls"] = calls
                        update["invalid_tool_calls"] = []
                meta = dict(message.response_metadata or {})
                served = (
                    (gen.generation_info or {}).get("model_name")
                    or meta.get("model_name")
                    or (result.llm_output or {}).get("model_name")
                )
                cost = cost_usd(served or self.model_name, message.usage_metadata)
                if cost is not None:
                    meta["cost_usd"] = cost
                    update["response_metadata"] = meta
                if update:
                    message = message.model_copy(update=update)
            generations.append(ChatGeneration(message=message, generation_info=gen.generation_info))
        return ChatResult(generations=generations, llm_output=result.llm_output)

    @contextmanager
    def _errors(self, timeout: Any = None, stream: _StreamFixer | None = None) -> Iterator[None]:
        """Turn SDK and transport failures into one-line BackendErrors.

        ``timeout`` is the per-call override (``model.invoke(..., timeout=5)``), if any;
        ``stream`` tells whether a streamed reply had already started when it failed.
        """
        try:
            yield
        except openai.APIError as exc:
            started = stream is not None and stream.started
            if started and isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError):
                raise self._broken(exc) from None
            raise _backend_error(self, exc, timeout) from None
        except Exception as exc:
            # Transport errors raised while a stream is read may reach us unwrapped.
            if type(exc).__module__.split(".")[0].startswith("httpx"):
                raise self._broken(exc) from None
            if _bad_response_body(exc):
                raise self._not_a_completion(exc) from None
            raise

    def _not_a_completion(self, exc: BaseException) -> BackendError:
        if isinstance(exc, json.JSONDecodeError):
            detail = f"not JSON: {_one_line(exc.doc[:80])!r}" if exc.doc.strip() else "an empty body"
        else:
            detail = _one_line(exc)
        return BackendError(
            f"{self.endpoint!r} answered HTTP 200, but with a body that is not a chat completion "
            f"({_redact(self, detail)})",
            "the server is at fault, not chatloom: check that the base URL points at an "
            "OpenAI-compatible API (it usually ends in /v1), and the server's logs",
        )

    def _broken(self, exc: BaseException) -> BackendError:
        return BackendError(
            f"the connection to {self.endpoint!r} broke during the reply "
            f"({_redact(self, _one_line(_root_cause(exc))) or type(exc).__name__})",
            "retry; if it keeps happening, check the server's logs",
        )


class _StreamFixer:
    """Turns a raw chunk stream into one with recovered tool calls and a cost.

    Text that may start a tool call is held back; at the end it is parsed, and either comes
    out as tool-call chunks (plus any prose around the call) or is released as text.
    """

    def __init__(self, model: ChatloomOpenAI, kwargs: dict[str, Any]) -> None:
        self.model = model
        names, params = _bound_tools(kwargs) if model.recover_tool_calls else ([], {})
        self.names, self.params = names, params
        self.holder = CallHoldBack(names) if names else None
        self.native = False
        self.started = False
        self.finish_reason: str | None = None
        self.model_name: str | None = None

    def feed(self, chunk: ChatGenerationChunk) -> ChatGenerationChunk:
        self.started = True
        message = chunk.message
        if not isinstance(message, AIMessageChunk):
            return chunk
        update: dict[str, Any] = {}
        if message.tool_call_chunks:
            self.native = True
        self.finish_reason = (chunk.generation_info or {}).get("finish_reason") or self.finish_reason
        meta = message.response_metadata or {}
        # The SDK loop puts the served model's name in generation_info, not the message.
        self.model_name = (chunk.generation_info or {}).get("model_name") or meta.get("model_name") or self.model_name
        if message.usage_metadata:
            cost = cost_usd(self.model_name or self.model.model_name, message.usage_metadata)
            if cost is not None:
                update["response_metadata"] = {**meta, "cost_usd": cost}
        if self.holder is not None and isinstance(message.content, str) and message.content:
            update["content"] = self.holder.feed(message.content)
        if not update:
            return chunk
        return ChatGenerationChunk(message=message.model_copy(update=update), generation_info=chunk.generation_info)

    def check_complete(self) -> None:
        """Raise if the stream ended without a finish_reason: the reply was cut off.

        Every OpenAI-compatible server ends a reply with a finish_reason; a stream that stops
        before it (a proxy timeout, a crashed server that closed the connection cleanly) is
        an unfinished answer, which must never be taken for a whole one.
        """
        if not self.started:  # not one event: an HTML page or an error body, not an SSE stream
            raise self.model._not_a_completion(ValueError("a stream with no events in it"))
        if self.finish_reason is None:
            raise BackendError(
                f"the reply from {self.model.endpoint!r} was cut off: the stream ended without "
                "a finish_reason after the answer had started",
                "retry; if it keeps happening, check the server's (or a proxy's) logs and timeouts",
            )

    def finish(self) -> ChatGenerationChunk | None:
        if self.holder is None:
            return None
        rest = self.holder.rest()
        if not rest:
            return None
        calls: list[dict[str, Any]] = []
        content = rest
        if not self.native:
            found_content, found = parse_tool_calls(rest, self.names, self.params)
            # The whole reply decides, as in a non-streamed call: a call only counts if the
            # full text parses to one too.
            if found and parse_tool_calls(self.holder.text, self.names, self.params)[1]:
                content, calls = found_content, found
        chunks = [
            tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
            for i, c in enumerate(calls)
        ]
        return ChatGenerationChunk(message=AIMessageChunk(content=content, tool_call_chunks=chunks))


def _bound_tools(kwargs: dict[str, Any]) -> tuple[list[str], dict[str, list[str]]]:
    """Names and parameter names of the tools bound to this call (OpenAI tool format)."""
    if kwargs.get("tool_choice") == "none":
        return [], {}
    names: list[str] = []
    params: dict[str, list[str]] = {}
    for spec in kwargs.get("tools") or []:
        func = spec.get("function") if isinstance(spec, dict) else None
        if not isinstance(func, dict) or not isinstance(func.get("name"), str):
            continue
        names.append(func["name"])
        props = (func.get("parameters") or {}).get("properties") or {}
        params[func["name"]] = list(props)
    return names, params


def _backend_error(model: ChatloomOpenAI, exc: openai.APIError, timeout: Any = None) -> BackendError:
    url = model.endpoint
    name = model.model_name
    attempts = (model.max_retries or 0) + 1
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    detail = _redact(model, _server_message(exc))
    status = getattr(exc, "status_code", None)
    if isinstance(exc, openai.APITimeoutError):
        err = BackendError(
            f"no reply from {url!r} within {_seconds(timeout or model.request_timeout)}{tries}",
            "raise the timeout (timeout=...), or check that the server is not overloaded",
        )
    elif isinstance(exc, openai.APIConnectionError):
        err = BackendError(
            f"cannot connect to {url!r} ({_connection_reason(exc)}){tries}",
            "start the server, or fix CHATLOOM_OPENAI_BASE_URL / OPENAI_BASE_URL",
        )
    elif isinstance(exc, openai.AuthenticationError):
        err = BackendError(f"{url!r} rejected the API key (HTTP 401)", "set a valid OPENAI_API_KEY")
    elif isinstance(exc, openai.PermissionDeniedError):
        err = BackendError(
            f"the API key may not use model {name!r} at {url!r} (HTTP 403{': ' + detail if detail else ''})",
            "check the key's project and model permissions",
        )
    elif isinstance(exc, openai.NotFoundError):
        err = BackendError(
            f"model {name!r} not found at {url!r} (HTTP 404{': ' + detail if detail else ''})",
            f"check the model name (GET {url}/models lists them) and that the base URL ends in /v1",
        )
    elif isinstance(exc, openai.RateLimitError):
        err = BackendError(
            f"rate limited by {url!r} (HTTP 429){tries}{': ' + detail if detail else ''}",
            "wait and retry, raise max_retries, or check your quota",
        )
    elif isinstance(exc, openai.BadRequestError):
        err = BackendError(
            f"{url!r} rejected the request for model {name!r} (HTTP 400{': ' + detail if detail else ''})",
            "check the model's options and the conversation length",
        )
    elif status is not None and status >= 500:
        err = BackendError(
            f"{url!r} failed with HTTP {status}{tries}{': ' + detail if detail else ''}",
            "retry later, or check the server's logs",
        )
    elif status is not None:
        err = BackendError(
            f"{url!r} answered HTTP {status} for model {name!r}{': ' + detail if detail else ''}",
            "check the model name and options",
        )
    else:
        err = BackendError(f"{url!r} failed: {detail or type(exc).__name__}", "retry, or check the server's logs")
    err.status_code = status  # type: ignore[attr-defined]
    return err


def _bad_response_body(exc: BaseException) -> bool:
    """Whether ``exc`` came from reading a 200 reply's body (not JSON, not a completion)."""
    if isinstance(exc, json.JSONDecodeError):
        return True  # the request side never parses JSON; only a reply body does
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "_create_chat_result":  # langchain-openai's parser
            return True
        tb = tb.tb_next
    return False


def _server_message(exc: openai.APIError) -> str:
    body = getattr(exc, "body", None)
    message = None
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            message = inner.get("message")
        elif isinstance(inner, str):
            message = inner
    return _one_line(message or getattr(exc, "message", "") or "")


def _connection_reason(exc: BaseException) -> str:
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        text = str(node).lower()
        if "refused" in text:
            return "connection refused"
        if (
            "name or service not known" in text
            or "nodename nor servname" in text
            or "getaddrinfo" in text
            or "name resolution" in text
        ):
            return "unknown host"
        if "ssl" in text or "certificate" in text:
            return "TLS error: " + _one_line(node)
        node = node.__cause__ or node.__context__
    return _one_line(exc) or "connection failed"


def _root_cause(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    node = exc
    while id(node) not in seen:
        seen.add(id(node))
        nxt = node.__cause__ or node.__context__
        if nxt is None:
            break
        node = nxt
    return node


def _seconds(timeout: Any) -> str:
    if isinstance(timeout, (int, float)):
        return f"{timeout:g} s"
    return "the timeout"


def _one_line(value: Any) -> str:
    text = " ".join(str(value).split())
    return text[:240] + ("…" if len(text) > 240 else "")


def _redact(model: ChatloomOpenAI, text: str) -> str:
    """Remove the API key (and anything shaped like one) from a server's message."""
    secret = model.openai_api_key
    key = secret.get_secret_value() if isinstance(secret, SecretStr) else ""
    if key and key != _DUMMY_KEY:
        text = text.replace(key, "***")
    return re.sub(r"\bsk-[A-Za-z0-9_*.-]{4,}", "sk-***", text)
