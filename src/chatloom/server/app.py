"""The HTTP API: OpenAI-compatible chat completions, a native event stream, threads, approvals.

Routes (all but ``/``, ``/health`` and ``/ready`` need ``Authorization: Bearer <key>`` when API
keys are configured; see :mod:`chatloom.server.config`):

- ``POST /v1/chat/completions``: OpenAI format, ``stream`` true (SSE) or false. The last
  message is the question. With no thread named (``X-Chatloom-Thread`` header or
  ``metadata.thread_id``) the request's earlier messages are the conversation and nothing is
  stored (unless ``[serve] store_stateless``); with one, the conversation lives on the server,
  in that thread (see :func:`_reconcile`). Citations, grounding and tool steps ride in a
  ``chatloom`` field that OpenAI clients ignore.
- ``GET /v1/models``: the agents, as models.
- ``POST /v1/agents/{name}/turns``: one turn as typed SSE events (``token``, ``tool_call``,
  ``tool_result``, ``approval_required``, ``answer``, ``error``), or JSON with ``stream: false``.
- ``GET/DELETE /v1/threads[/{id}]``.
- ``GET /v1/approvals``: the tenant's paused tool calls, read from the checkpointer;
  ``POST /v1/approvals/{id}`` with ``{"approve": true|false}`` resumes the paused turn and
  returns the rest of it (JSON ``events``, or SSE with ``"stream": true``).
- ``GET /openapi.json``: the schema, behind the key like the rest (no ``/docs`` page: offline).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatloom.agents.approvals import ApprovalPending, UnknownApproval
from chatloom.agents.reply import AnswerEvent, ApprovalRequired, PendingApproval, Token, ToolCallEvent
from chatloom.errors import ChatloomError, EmptyQuestion, InvalidHistory, QuestionTooLong, ThreadBusy, ThreadExists
from chatloom.server.agents import DEFAULT_AGENT, AgentCatalog, UnknownModel
from chatloom.server.config import ServerConfig
from chatloom.server.observe import EventCallback, Observer
from chatloom.server.threads import (
    MAX_THREAD_ID_CHARS,
    delete_thread,
    internal_id,
    list_threads,
    maybe_paused_threads,
    thread_messages,
)
from chatloom.server.turns import (
    TurnTimeout,
    approval_json,
    event_json,
    final_reply,
    new_turn,
    paused_notice,
    reply_json,
    run_turn,
    split_approval_id,
)

THREAD_HEADER = "X-Chatloom-Thread"
HISTORY_HEADER = "X-Chatloom-History"
"""Where a chat completion's earlier conversation came from: ``request`` (the messages sent),
``thread`` (the stored thread; the client's earlier messages, if any, agree with it) or
``thread-diverged`` (the stored thread; the client's earlier messages differ and were not used)."""
_BAD_THREAD_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class ApiError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self, status: int, message: str, code: str, type_: str = "invalid_request_error", param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.type, self.param = status, message, code, type_, param

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(body, status_code=self.status, headers=headers)


async def _reply_or_error(events: Any) -> Any:
    """The turn's final Reply, for a non-streaming request; a failed turn as its HTTP error."""
    try:
        return await final_reply(events)
    except Exception as exc:  # noqa: BLE001 - every failure becomes an API error, never a traceback
        raise api_error(exc) from None


def api_error(exc: BaseException) -> ApiError:
    """The HTTP error for an exception raised by a turn or a lookup."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, UnknownModel):
        return ApiError(404, str(exc), "model_not_found", param="model")
    if isinstance(exc, (EmptyQuestion, QuestionTooLong)):
        return ApiError(400, str(exc), "invalid_question", param="messages")
    if isinstance(exc, InvalidHistory):
        return ApiError(400, str(exc), "invalid_messages", param="messages")
    if isinstance(exc, ThreadExists):  # another request started the thread meanwhile
        return ApiError(409, str(exc), "thread_exists", "conflict_error", param="thread_id")
    if isinstance(exc, ThreadBusy):
        return ApiError(409, str(exc), "thread_busy", "conflict_error")
    if isinstance(exc, ApprovalPending):
        return ApiError(409, str(exc), "approval_pending", "conflict_error")
    if isinstance(exc, UnknownApproval):
        return ApiError(404, str(exc), "approval_not_found", param="approval_id")
    if isinstance(exc, TurnTimeout):
        return ApiError(504, str(exc), "turn_timeout", "timeout_error")
    if isinstance(exc, ChatloomError):
        return ApiError(502, str(exc), "agent_error", "server_error")
    return ApiError(
        500, f"internal error ({type(exc).__name__}); the server log has the details", "internal_error", "server_error"
    )


# -- request bodies ------------------------------------------------------------------------------


class ChatMessage(BaseModel):
    """One OpenAI chat message; only text content is used."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    """The OpenAI chat completions body; sampling parameters are accepted and ignored (the agent
    decides). ``user`` names the end user (their conversation memory), not a conversation."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    user: str | None = None
    metadata: dict[str, str] | None = None
    response_format: dict[str, Any] | None = None


class TurnRequest(BaseModel):
    """The native turn body."""

    model_config = ConfigDict(extra="forbid")
    input: str
    thread_id: str | None = None
    user: str | None = None
    stream: bool = True


class Decision(BaseModel):
    """An approve/deny call for a paused tool call; ``stream`` sends the rest of the turn as SSE."""

    model_config = ConfigDict(extra="forbid")
    approve: bool
    stream: bool = False


# -- the app -------------------------------------------------------------------------------------


def create_app(
    catalog: AgentCatalog, config: ServerConfig | None = None, *, on_event: Sequence[EventCallback] = ()
) -> FastAPI:
    """The ASGI app serving ``catalog``'s agents; run it with uvicorn (``chatloom serve`` does).

    ``on_event`` callbacks get every structured record (see :mod:`chatloom.server.observe`).
    """
    config = config or ServerConfig()
    observer = Observer(on_event)
    executor = ThreadPoolExecutor(config.max_concurrent_turns, thread_name_prefix="chatloom-turn")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
            catalog.close()

    # The schema is served by a route of ours (below), behind the same auth as the API: it lists
    # every route and body, which a server with keys shows only to its key holders. The
    # Swagger/ReDoc pages stay off: they load their scripts from a CDN, and chatloom works offline.
    app = FastAPI(title="chatloom", version="1", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.catalog, app.state.config, app.state.observer = catalog, config, observer

    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", THREAD_HEADER],
            expose_headers=[THREAD_HEADER, HISTORY_HEADER],
        )
    app.add_middleware(_BodyLimit, limit=config.max_body_bytes)
    if config.open:
        # Keyless means local: refuse other Host names (DNS rebinding) and cross-site writes.
        # Added before log_requests, so the refusals are logged too.
        from chatloom.local_only import LocalOnly

        app.add_middleware(
            LocalOnly,
            allowed_hosts=config.allowed_hosts,
            allowed_origins=config.cors_origins,
            setting="`chatloom serve --allow-host NAME` ([serve] allowed_hosts)",
        )

    @app.middleware("http")
    async def log_requests(request: Request, call_next: Any) -> Any:
        started = time.monotonic()
        request.state.request_id = secrets.token_hex(8)
        response = await call_next(request)
        observer.emit(
            "http.request",
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            ms=round((time.monotonic() - started) * 1000),
            tenant=getattr(request.state, "tenant", None),
            request_id=request.state.request_id,
        )
        return response

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return ApiError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", code).response()

    @app.exception_handler(RequestValidationError)
    async def on_bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        if err.get("type") == "json_invalid":
            message, where = "the request body is not valid JSON", ""
        else:
            message = f"{where or 'body'}: {err.get('msg', 'invalid')}"
        return ApiError(400, message, "invalid_body", param=where or None).response()

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        logging.getLogger("chatloom.server").exception("http.error", extra={"fields": {"path": request.url.path}})
        return api_error(exc).response()

    def tenant_of(request: Request) -> str:
        if config.open:
            tenant = config.local_tenant
        else:
            scheme, _, key = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not key.strip():
                raise ApiError(401, "no API key: send the header Authorization: Bearer <your key>", "missing_api_key")
            found = config.tenant_for(key.strip())
            if found is None:
                raise ApiError(401, "the API key is not valid", "invalid_api_key")
            tenant = found.name
        request.state.tenant = tenant
        return tenant

    async def in_worker(func: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(executor, func, *args)

    async def ready_agent(name: str, tenant: str) -> Any:
        try:
            return await in_worker(lambda: catalog.get(name, tenant).load())
        except Exception as exc:  # noqa: BLE001 - every failure becomes an API error, never a traceback
            raise api_error(exc) from None

    async def traced(
        agent_name: str, tenant: str, thread_id: str | None, request: Request, events_of: Any
    ) -> AsyncIterator[Any]:
        """The events of ``events_of()`` (a turn, new or resumed), recorded by the observer
        (a turn on no thread with ``thread_id`` "")."""
        trace = observer.turn(
            agent=agent_name, tenant=tenant, thread_id=thread_id or "", request_id=request.state.request_id
        )
        events = run_turn(events_of, timeout=config.turn_timeout, executor=executor)
        try:
            async for event in events:
                trace.see(event)
                yield event
        except BaseException as exc:
            trace.failed(exc)
            raise
        trace.ended()

    def question(
        agent: Any, tenant: str, thread_id: str | None, text: str, user: str | None, history: list[Any] | None = None
    ) -> Any:
        """What a new question's turn runs (in a worker thread); ``thread_id`` None: on no thread."""
        stored = internal_id(tenant, thread_id) if thread_id is not None else None
        return lambda: new_turn(
            agent,
            text,
            thread_id=stored,
            user_id=_user_id(tenant, user),
            approval_timeout=config.approval_timeout,
            history=history,
        )

    @functools.cache
    def state_reader() -> Any:
        """A compiled turn graph on the catalog's store: it reads any thread's state (paused
        turns included) before any agent is built."""
        from chatloom.agents.graph import build_graph

        return build_graph(catalog.checkpointer)

    def approvals_in(stored: str) -> list[PendingApproval]:
        """The approvals the stored thread ``stored`` waits for, read from the checkpointer."""
        from chatloom.agents.approvals import paused_turn

        return paused_turn(state_reader().get_state({"configurable": {"thread_id": stored}}), stored)[0]

    def tenant_approvals(tenant: str) -> list[tuple[str, PendingApproval]]:
        """``(client thread id, approval)`` of every paused call of ``tenant``, oldest first."""
        prefix = internal_id(tenant, "")
        found = [
            (stored[len(prefix) :], a)
            for stored in maybe_paused_threads(catalog.checkpointer, tenant)
            for a in approvals_in(stored)
        ]
        return sorted(found, key=lambda item: item[1].requested_at)

    # -- health --------------------------------------------------------------------------------

    def knowledge_report(tenant: str | None) -> dict[str, Any]:
        """Per knowledge model, its namespace and whether it is empty for ``tenant``; for a
        caller without a key on a keyed server (a load balancer), only how many tenants find it
        empty, so an unauthenticated probe learns no tenant names."""
        tenants = [tenant] if tenant else config.served_tenants()
        empty: dict[str, int] = {}
        for t in tenants:
            for name, _ in catalog.empty_knowledge(t):
                empty[name] = empty.get(name, 0) + 1
        report: dict[str, Any] = {}
        for name, namespace in catalog.knowledge.items():
            entry: dict[str, Any] = {"namespace": namespace, "empty": name in empty}
            if tenant:
                entry["tenant"] = tenant
            else:
                entry["empty_tenants"] = empty.get(name, 0)
            report[name] = entry
        return report

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        """Liveness, and each knowledge model's namespace: ``empty`` true means the bot has
        nothing to answer from (nothing was ingested for this tenant)."""
        tenant: str | None = config.local_tenant if config.open else None
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if not config.open and scheme.lower() == "bearer" and key.strip():
            found = config.tenant_for(key.strip())  # a wrong key is no error here: probes send none
            tenant = found.name if found else None
        body: dict[str, Any] = {"status": "ok"}
        if catalog.knowledge:
            # Not on the turn workers: a liveness probe must not queue behind busy turns, nor
            # wait long on a slow store.
            try:
                body["knowledge"] = await asyncio.wait_for(asyncio.to_thread(knowledge_report, tenant), 5)
            except Exception as exc:  # noqa: BLE001 - the process is alive; say what fails instead
                body["knowledge"] = {"error": f"the knowledge store fails ({type(exc).__name__})"}
        return body

    @app.get("/ready")
    async def ready() -> JSONResponse:
        try:
            await in_worker(list_threads, catalog.checkpointer, "-ready-probe-", 1)
        except Exception as exc:  # noqa: BLE001 - any store failure means not ready
            return JSONResponse(
                {"status": "unavailable", "reason": f"the conversation store fails ({type(exc).__name__})"},
                status_code=503,
            )
        return JSONResponse({"status": "ready", "models": catalog.names()})

    # -- OpenAI-compatible ---------------------------------------------------------------------

    def model_json(name: str) -> dict[str, Any]:
        return {
            "id": name,
            "object": "model",
            "created": 0,
            "owned_by": "chatloom",
            "description": catalog.descriptions.get(name, ""),
        }

    @app.get("/v1/models")
    async def models(tenant: str = Depends(tenant_of)) -> dict[str, Any]:
        return {"object": "list", "data": [model_json(n) for n in catalog.names()]}

    @app.get("/v1/models/{name}")
    async def model(name: str, tenant: str = Depends(tenant_of)) -> dict[str, Any]:
        if name not in catalog.names():
            raise api_error(UnknownModel(f"the model {name!r} does not exist", "GET /v1/models lists them"))
        return model_json(name)

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request, tenant: str = Depends(tenant_of)) -> Any:
        _refuse_response_format(body.response_format)
        text, earlier = _conversation(body.messages)
        # `user` is OpenAI's end-user id: chat UIs send the same one for every conversation of a
        # person, so it must not name a thread (their conversations would run together).
        named = request.headers.get(THREAD_HEADER) or (body.metadata or {}).get("thread_id")
        thread_id: str | None = None
        history: list[Any] | None = earlier  # the client's earlier messages, or None: the stored thread's
        source = "request"
        if named:
            thread_id = _thread_id(named)
            if earlier:
                stored = await in_worker(thread_messages, catalog.checkpointer, tenant, thread_id)
                history, source = _reconcile(stored, earlier)
            else:
                history, source = None, "thread"
        elif config.store_stateless:
            thread_id = _thread_id(None)  # a new thread, started with the client's earlier messages
        agent = await ready_agent(body.model, tenant)
        events = traced(
            body.model, tenant, thread_id, request, question(agent, tenant, thread_id, text, body.user, history)
        )
        completion_id, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
        # No thread header for a conversation that wasn't stored: there is nothing to continue.
        headers = {HISTORY_HEADER: source, **({THREAD_HEADER: thread_id} if thread_id else {})}
        if not body.stream:
            reply = await _reply_or_error(events)
            completion = _completion(completion_id, created, body.model, reply, thread_id, source)
            return JSONResponse(completion, headers=headers)
        chunks = _completion_chunks(
            events, completion_id, created, body.model, thread_id, preview=not agent.checks_answers(), history=source
        )
        return EventSourceResponse(chunks, headers=headers, ping=15)

    # -- native --------------------------------------------------------------------------------

    @app.post("/v1/agents/{name}/turns")
    async def turns(name: str, body: TurnRequest, request: Request, tenant: str = Depends(tenant_of)) -> Any:
        thread_id = _thread_id(body.thread_id)
        agent = await ready_agent(name, tenant)
        events = traced(name, tenant, thread_id, request, question(agent, tenant, thread_id, body.input, body.user))
        headers = {THREAD_HEADER: thread_id}
        if not body.stream:
            reply = await _reply_or_error(events)
            kind = "paused" if reply.stop_reason == "paused" else "answer"
            return JSONResponse({"type": kind, **reply_json(reply, thread_id)}, headers=headers)
        return EventSourceResponse(_native_sse(events, thread_id), headers=headers, ping=15)

    # -- threads and approvals -------------------------------------------------------------------

    @app.get("/v1/threads")
    async def threads(tenant: str = Depends(tenant_of)) -> dict[str, Any]:
        ids = await in_worker(list_threads, catalog.checkpointer, tenant)
        return {"object": "list", "data": [{"id": t, "object": "thread"} for t in ids]}

    @app.get("/v1/threads/{thread_id:path}")
    async def thread(thread_id: str, tenant: str = Depends(tenant_of)) -> dict[str, Any]:
        messages = await in_worker(thread_messages, catalog.checkpointer, tenant, _thread_id(thread_id))
        if messages is None:
            raise ApiError(404, f"there is no thread {thread_id!r}", "thread_not_found", param="thread_id")
        return {"id": thread_id, "object": "thread", "messages": messages}

    @app.delete("/v1/threads/{thread_id:path}")
    async def forget(thread_id: str, tenant: str = Depends(tenant_of)) -> dict[str, Any]:
        try:  # waits for a running turn on the thread to end, as long as a turn may run
            await in_worker(delete_thread, catalog.checkpointer, tenant, _thread_id(thread_id), config.turn_timeout)
        except ThreadBusy as exc:
            raise api_error(exc) from None
        return {"id": thread_id, "object": "thread.deleted", "deleted": True}

    @app.get("/v1/approvals")
    async def pending(tenant: str = Depends(tenant_of)) -> dict[str, Any]:
        found = await in_worker(tenant_approvals, tenant)
        return {"object": "list", "data": [approval_json(a, thread) for thread, a in found]}

    @app.post("/v1/approvals/{approval_id}")
    async def decide(approval_id: str, body: Decision, request: Request, tenant: str = Depends(tenant_of)) -> Any:
        not_found = ApiError(
            404, f"no tool call is waiting for approval {approval_id!r}", "approval_not_found", param="approval_id"
        )
        where = split_approval_id(approval_id)
        if where is None or len(where[0]) > MAX_THREAD_ID_CHARS:
            raise not_found
        thread_id, local_id = where
        stored = internal_id(tenant, thread_id)  # the tenant comes from the key: never another tenant's thread
        found = [a for a in await in_worker(approvals_in, stored) if a.approval_id == local_id]
        if not found:
            raise not_found
        name = found[0].agent or DEFAULT_AGENT
        if name not in catalog.names():
            raise ApiError(
                409,
                f"the turn was paused by the model {name!r}, which this server no longer offers",
                "model_gone",
                "conflict_error",
                param="approval_id",
            )
        agent = await ready_agent(name, tenant)
        events = traced(name, tenant, thread_id, request, lambda: agent.resume(stored, {local_id: body.approve}))
        headers = {THREAD_HEADER: thread_id}
        if body.stream:
            return EventSourceResponse(_native_sse(events, thread_id), headers=headers, ping=15)
        try:
            rest = [event_json(e, thread_id) async for e in events]
        except Exception as exc:  # noqa: BLE001 - every failure becomes an API error, never a traceback
            raise api_error(exc) from None
        return JSONResponse(
            {"approval_id": approval_id, "approved": body.approve, "thread_id": thread_id, "events": rest},
            headers=headers,
        )

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_schema(request: Request) -> JSONResponse:
        """The OpenAPI schema: a key is needed when keys are configured (else 401)."""
        tenant_of(request)
        return JSONResponse(app.openapi())

    # -- the web page ----------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        if not config.ui:
            raise ApiError(404, "the web chat page is off; start the server with `chatloom serve --ui`", "not_found")
        from importlib.resources import files

        html = files("chatloom.server").joinpath("static/chat.html").read_text(encoding="utf-8")
        return HTMLResponse(
            html,
            headers={
                "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"
            },
        )

    return app


# -- helpers -------------------------------------------------------------------------------------


def _text(content: str | list[dict[str, Any]] | None) -> str:
    """A message's text: its string, or its text parts joined (other parts are not read)."""
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if part.get("type") == "text")
    return content or ""


def _question(messages: list[ChatMessage]) -> str:
    last = messages[-1]
    if last.role != "user":
        raise ApiError(
            400,
            f"the last message must be the user's question (role 'user'), not {last.role!r}",
            "invalid_messages",
            param="messages",
        )
    content = _text(last.content)
    if not content.strip():
        raise ApiError(400, "the question (the last message's content) is empty", "invalid_question", param="messages")
    return content


def _conversation(messages: list[ChatMessage]) -> tuple[str, list[Any]]:
    """The question (the last message) and the client's earlier user and assistant messages, as
    ``HumanMessage``/``AIMessage`` (the history :meth:`Agent.stream` takes).

    - ``system``/``developer`` messages are dropped: the agent's prompt (the deployer's) is the
      system message, and a client's must not override its role or its grounding rules.
    - ``tool``/``function`` messages and assistant tool calls are refused (400): the server runs
      its agents' tools itself, and a tool result a client wrote must never pass for one (a
      grounded answer is checked against tool results).
    - Resent assistant messages are the client's account of the conversation: the model sees
      them as earlier turns, nothing more (never passages or tool results).
    """
    from langchain_core.messages import AIMessage, HumanMessage

    text = _question(messages)
    earlier: list[Any] = []
    for i, message in enumerate(messages[:-1]):
        extra = message.model_extra or {}
        if message.role in ("system", "developer"):
            continue
        if message.role in ("tool", "function") or (
            message.role == "assistant" and (extra.get("tool_calls") or extra.get("function_call"))
        ):
            what = "a tool result" if message.role in ("tool", "function") else "an assistant tool call"
            raise ApiError(
                400,
                f"messages[{i}] is {what}: this server runs its agents' own tools and takes no tool calls "
                "or results from clients; send only the conversation's user and assistant messages",
                "invalid_messages",
                param=f"messages[{i}]",
            )
        if message.role not in ("user", "assistant"):
            raise ApiError(
                400,
                f"messages[{i}] has the role {message.role!r}; use 'user', 'assistant' or 'system'",
                "invalid_messages",
                param=f"messages[{i}]",
            )
        content = _text(message.content).strip()
        if content:  # an empty turn (a UI's placeholder) tells the model nothing
            earlier.append(HumanMessage(content) if message.role == "user" else AIMessage(content))
    return text, earlier


def _reconcile(stored: list[dict[str, Any]] | None, earlier: list[Any]) -> tuple[list[Any] | None, str]:
    """``(history for the turn, HISTORY_HEADER value)`` for a request on a named thread that
    also resends earlier messages.

    The stored thread wins. It holds what the client can't resend (tool steps, summaries, a
    paused call, whether untrusted text was read), and a client editing its copy must not
    rewrite what the server's agent said. So a thread that exists continues as stored:
    ``thread`` when the client's messages are the stored questions and answers (or their most
    recent part: UIs drop old turns to fit), else ``thread-diverged``, and the client's are not
    used. A thread that doesn't exist yet starts with the client's messages (``request``).
    """
    if not stored:
        return earlier, "request"
    said = [(m["role"], str(m["content"]).strip()) for m in stored if m["role"] in ("user", "assistant")]
    sent = [("user" if m.type == "human" else "assistant", str(m.content).strip()) for m in earlier]
    agrees = len(sent) <= len(said) and said[len(said) - len(sent) :] == sent
    return None, "thread" if agrees else "thread-diverged"


def _refuse_response_format(response_format: dict[str, Any] | None) -> None:
    """A 400 for a structured-output request: the agents answer in text, and a client that asked
    for JSON must not get prose it then fails to parse. ``{"type": "text"}`` is what they do."""
    kind = (response_format or {}).get("type", "text")
    if kind != "text":
        raise ApiError(
            400,
            f"response_format {kind!r} is not supported: chatloom's agents answer in text (citations and "
            'tool steps ride in the "chatloom" field); leave response_format out, or send {"type": "text"}',
            "unsupported_parameter",
            param="response_format",
        )


def _thread_id(given: str | None) -> str:
    if given is None or given == "":
        return f"chat-{secrets.token_hex(8)}"
    if len(given) > MAX_THREAD_ID_CHARS or _BAD_THREAD_CHARS.search(given) or not given.strip():
        raise ApiError(
            400,
            f"the thread id must be 1 to {MAX_THREAD_ID_CHARS} printable characters",
            "invalid_thread_id",
            param="thread_id",
        )
    return given


def _user_id(tenant: str, user: str | None) -> str | None:
    # Conversation memory is per tenant already (the tenant's memory); the prefix keeps user
    # ids apart in any memory shared across tenants too.
    return internal_id(tenant, user) if user else None


async def _native_sse(events: AsyncIterator[Any], thread_id: str) -> AsyncIterator[dict[str, str]]:
    """A turn's events as the native endpoint's SSE messages; a failure as an ``error`` event."""
    try:
        async for event in events:
            data = event_json(event, thread_id)
            yield {"event": data["type"], "data": json.dumps(data, ensure_ascii=False)}
    except Exception as exc:  # noqa: BLE001 - the stream ends with an error event, never a traceback
        error = api_error(exc)
        yield {
            "event": "error",
            "data": json.dumps(
                {"type": "error", "error": {"message": error.message, "code": error.code, "status": error.status}}
            ),
        }


def _usage(reply: Any) -> dict[str, int]:
    u = reply.usage
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens, "total_tokens": u.total_tokens}


def _shown(reply: Any) -> str:
    """The message content an OpenAI client shows: the answer, or what a paused turn waits for."""
    return paused_notice(reply.approval_required) if reply.stop_reason == "paused" else reply.answer


def _finish(reply: Any) -> str:
    return "length" if reply.stop_reason == "step_limit" else "stop"


def _completion(
    completion_id: str, created: int, model: str, reply: Any, thread_id: str | None, history: str
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": _shown(reply)},
                "finish_reason": _finish(reply),
                "logprobs": None,
            }
        ],
        "usage": _usage(reply),
        "chatloom": {**reply_json(reply, thread_id), "history": history},
    }


async def _completion_chunks(
    events: AsyncIterator[Any],
    completion_id: str,
    created: int,
    model: str,
    thread_id: str | None,
    *,
    preview: bool = True,
    history: str = "thread",
) -> AsyncIterator[dict[str, str]]:
    """The turn as OpenAI chat.completion.chunk SSE messages, ending with ``[DONE]``.

    Tool steps and approvals come as chunks with an empty delta and a ``chatloom`` event; the
    final chunk carries the whole reply in ``chatloom`` (for a paused turn: a notice as content,
    and ``chatloom`` of type ``paused`` with the approvals). With ``preview``, the model's tokens
    stream as content. An OpenAI client can't take back content, so agents whose grounding
    check may replace the model's answer (a quote, or "not found") get ``preview=False``: their
    checked answer comes as one piece at the end. If streamed text still turns out not to be
    the answer (text a model wrote before a tool call), the final chunk says
    ``"preview_replaced": true`` and its ``chatloom.answer`` is the answer.
    """

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, str]:
        data: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        data.update(extra)
        return {"data": json.dumps(data, ensure_ascii=False)}

    yield chunk({"role": "assistant", "content": ""})
    sent = ""
    paused: list[Any] = []
    try:
        async for event in events:
            if isinstance(event, Token):
                if not preview:
                    continue
                sent += event.text
                yield chunk({"content": event.text})
            elif isinstance(event, AnswerEvent):
                reply = event.reply
                answer = reply.answer
                replaced = not answer.startswith(sent)
                if not replaced and answer[len(sent) :]:
                    yield chunk({"content": answer[len(sent) :]})
                final = {**event_json(event, thread_id), "preview_replaced": replaced, "history": history}
                yield chunk({}, _finish(reply), usage=_usage(reply), chatloom=final)
            else:
                if isinstance(event, ApprovalRequired):
                    paused.append(event.approval)
                if isinstance(event, ToolCallEvent) and sent:
                    sent += "\n\n"  # the text before a tool call was not the answer; keep it apart
                    yield chunk({"content": "\n\n"})
                yield chunk({}, chatloom=event_json(event, thread_id))
        if paused:  # the turn paused: say so as content (OpenAI clients show nothing else)
            approvals = [approval_json(a, thread_id or "") for a in paused]
            yield chunk(
                {"content": ("\n\n" if sent else "") + paused_notice(paused)},
                "stop",
                chatloom={"type": "paused", "thread_id": thread_id, "approval_required": approvals},
            )
    except Exception as exc:  # noqa: BLE001 - the stream ends with an error chunk, never a traceback
        error = api_error(exc)
        yield {
            "data": json.dumps(
                {"error": {"message": error.message, "type": error.type, "code": error.code, "param": None}}
            )
        }
    yield {"data": "[DONE]"}


class _BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets a 413, before any route reads it."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._too_large(scope, receive, send)
        body, more, messages = 0, True, []
        while more:  # read the body now (it is at most `limit` bytes), then replay it
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += len(message.get("body", b""))
            if body > self.limit:
                return await self._too_large(scope, receive, send)
            more = message.get("more_body", False)

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        error = ApiError(413, f"the request body is over the limit of {self.limit:,} bytes", "request_too_large")
        await error.response()(scope, receive, send)
