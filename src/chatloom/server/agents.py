"""The agents a server offers, as OpenAI "models": a workspace's ``agents/*.yaml`` and ``default``.

Each tenant gets its own :class:`~chatloom.Agent` per model (built on first use), with the
tenant's own memory (``open_memory(..., tenant=...)``); all share one checkpointer, one
resolved chat model per agent name, and :data:`~chatloom.server.turns.http_approver` (tool
approvals pause the turn in the checkpointer until ``POST /v1/approvals/{id}``).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatloom.errors import ChatloomError, closest_name

DEFAULT_AGENT = "default"


class UnknownModel(ChatloomError):
    """A request named a model (agent) the server doesn't offer."""


class AgentCatalog:
    """Named agents built per tenant by ``factories[name](tenant)``, cached.

    ``checkpointer`` is the store every agent of this catalog writes to (threads are listed
    from it). Library users can serve their own agents::

        catalog = AgentCatalog({"helpdesk": lambda tenant: Agent(model=..., checkpointer=saver,
                                approver=http_approver)}, checkpointer=saver)

    ``knowledge`` maps a model to the memory namespace it answers from, and
    ``has_knowledge(namespace, tenant)`` tells whether anything was ingested there; with both,
    the server reports knowledge bots whose namespace is empty (on start and in ``/health``),
    since such a bot otherwise just answers "not found" to everything.
    """

    def __init__(
        self,
        factories: dict[str, Callable[[str], Any]],
        *,
        checkpointer: Any,
        descriptions: dict[str, str] | None = None,
        knowledge: dict[str, str] | None = None,
        has_knowledge: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.factories = dict(factories)
        self.checkpointer = checkpointer
        self.descriptions = dict(descriptions or {})
        self.knowledge = dict(knowledge or {}) if has_knowledge is not None else {}
        self._has_knowledge = has_knowledge
        self._agents: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """The model names, in order."""
        return list(self.factories)

    def get(self, name: str, tenant: str) -> Any:
        """The agent ``name`` of ``tenant`` (built on first use); :class:`UnknownModel` if none."""
        if name not in self.factories:
            near = closest_name(name, self.factories)
            hint = f"did you mean {near!r}?" if near else f"use one of: {', '.join(self.factories)} (GET /v1/models)"
            raise UnknownModel(f"the model {name!r} does not exist", hint)
        with self._lock:
            agent = self._agents.get((name, tenant))
            if agent is None:
                agent = self._agents[(name, tenant)] = self.factories[name](tenant)
                agent.name = name  # recorded with its paused turns, so a decision resumes them with this agent
            return agent

    def empty_knowledge(self, tenant: str) -> list[tuple[str, str]]:
        """``(model, namespace)`` of every knowledge model whose namespace is empty for ``tenant``."""
        probe = self._has_knowledge
        if probe is None:
            return []
        return [(name, ns) for name, ns in self.knowledge.items() if not probe(ns, tenant)]

    def close(self) -> None:
        """Stop every agent's MCP servers (and close the knowledge probe's store)."""
        for agent in self._agents.values():
            agent.close()
        close_probe = getattr(self._has_knowledge, "close", None)
        if close_probe is not None:
            close_probe()


def workspace_catalog(workspace: Path, *, model: str | None = None, settings: Any = None) -> AgentCatalog:
    """The catalog of ``workspace``: each ``agents/*.yaml`` by its name, plus ``default``
    (``agents/assistant.yaml`` when it exists, else the built-in assistant with a calculator,
    as ``chatloom chat`` uses). ``model`` overrides every agent's model."""
    from chatloom.agents.defaults import DEFAULT_PROMPT, DEFAULT_SPEC, DEFAULT_TOOLS
    from chatloom.agents.spec import load_spec
    from chatloom.config import get_settings
    from chatloom.memory.checkpoint import open_checkpointer

    settings = settings or get_settings()
    checkpointer = open_checkpointer(settings)
    specs: dict[str, Any] = {}
    for path in sorted((workspace / "agents").glob("*.yaml")):
        spec = load_spec(path)
        specs[spec.name or path.stem] = spec
    default_path = workspace / DEFAULT_SPEC
    models: dict[str, Any] = {}
    model_lock = threading.Lock()

    def shared_model(model_id: str | None) -> Any:
        # Each model id is loaded once and shared by every agent and tenant (a local model is big).
        chosen = model or model_id or settings.model
        with model_lock:
            if chosen not in models:
                from chatloom.models import resolve_model

                models[chosen] = resolve_model(chosen, settings=settings)
            return models[chosen]

    def build(spec: Any, tenant: str) -> Any:
        from chatloom.agents.agent import Agent
        from chatloom.server.turns import http_approver

        common = {"approver": http_approver, "checkpointer": checkpointer, "settings": settings}
        if spec is None:
            return Agent(model=shared_model(None), prompt=DEFAULT_PROMPT, tools=list(DEFAULT_TOOLS), **common)
        memory = None
        namespace = spec.memory.namespace or spec.name
        if spec.memory.enabled or "search" in spec.tools:
            from chatloom.memory import open_memory

            memory = open_memory(settings, namespace=namespace, tenant=tenant)
        tools: list[Any] = list(spec.tools)
        if "search" in tools:
            # The built-in search tool, bound to this tenant's knowledge (never the default tenant's).
            from chatloom.tools.search import make_search_tool

            tools = [make_search_tool(memory, namespace=namespace) if t == "search" else t for t in tools]
        return Agent.from_spec(
            spec.path,
            model=shared_model(spec.model),
            tools=tools,
            memory=memory if spec.memory.enabled else None,
            **common,
        )

    factories: dict[str, Callable[[str], Any]] = {}
    descriptions: dict[str, str] = {}
    default_spec = load_spec(default_path) if default_path.is_file() else None
    factories[DEFAULT_AGENT] = lambda tenant: build(default_spec, tenant)
    descriptions[DEFAULT_AGENT] = (
        default_spec.description if default_spec else "The built-in assistant with a calculator."
    )
    for name, spec in specs.items():
        if name == DEFAULT_AGENT:
            continue
        factories[name] = functools.partial(build, spec)
        descriptions[name] = spec.description
    served = {DEFAULT_AGENT: default_spec, **{n: s for n, s in specs.items() if n != DEFAULT_AGENT}}
    knowledge = {
        name: spec.memory.namespace or spec.name
        for name, spec in served.items()
        if spec is not None and (spec.memory.enabled or "search" in spec.tools)
    }
    return AgentCatalog(
        factories,
        checkpointer=checkpointer,
        descriptions=descriptions,
        knowledge=knowledge,
        has_knowledge=KnowledgeProbe(settings) if knowledge else None,
    )


class KnowledgeProbe:
    """``probe(namespace, tenant)``: whether anything was ingested there, in the memory store of
    ``settings``. One indexed lookup; the store is opened on first use and shared, behind a lock
    (``/health`` runs in worker threads, and one index connection must not serve two at once)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._store: Any = None

    def __call__(self, namespace: str, tenant: str) -> bool:
        from chatloom.memory.store import ns_key, open_store

        with self._lock:
            if self._store is None:
                self._store = open_store(self.settings)
            try:
                return bool(self._store.has_chunks(ns_key(namespace, tenant)))
            except Exception:
                # A dropped PostgreSQL connection doesn't come back: reopen on the next call.
                with contextlib.suppress(Exception):
                    self._store.close()
                self._store = None
                raise

    def close(self) -> None:
        """Close the store (a later call opens it again)."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
