"""``chatloom serve``: agents over HTTP, in the OpenAI format and as typed event streams.

>>> from chatloom.server import AgentCatalog, ServerConfig, create_app     # doctest: +SKIP
>>> app = create_app(AgentCatalog({"helpdesk": make_agent}, checkpointer=saver), ServerConfig())  # doctest: +SKIP

Needs the ``server`` extra (``pip install 'chatloom[server]'``). See docs/serve.md.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AgentCatalog",
    "ServerConfig",
    "Tenant",
    "create_app",
    "http_approver",
    "load_server_config",
    "workspace_catalog",
]

_WHERE = {
    "AgentCatalog": "chatloom.server.agents",
    "workspace_catalog": "chatloom.server.agents",
    "ServerConfig": "chatloom.server.config",
    "Tenant": "chatloom.server.config",
    "load_server_config": "chatloom.server.config",
    "create_app": "chatloom.server.app",
    "http_approver": "chatloom.server.turns",
}


def __getattr__(name: str) -> Any:
    # Lazy, so `chatloom serve --help` and the config work without importing FastAPI.
    if name not in _WHERE:
        raise AttributeError(f"module 'chatloom.server' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_WHERE[name]), name)
