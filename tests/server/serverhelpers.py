"""Helpers for the server tests: scripted agents per tenant, and a live server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.tools import tool

from chatloom import Agent
from chatloom.memory.base import Passage
from chatloom.server.agents import AgentCatalog
from chatloom.server.config import ServerConfig, Tenant
from chatloom.server.turns import http_approver
from chatloom.testing import FakeChatModel, free_port, stop_process, tool_call, wait_until_serving

REPO = Path(__file__).resolve().parents[2]
KEY_A = "key-acme-0123456789abcdef"
KEY_B = "key-globex-0123456789abcdef"
TENANTS = (Tenant("acme", (KEY_A,)), Tenant("globex", (KEY_B,)))
SENT_EMAILS: list[dict[str, str]] = []


def counting_echo(messages: list[Any]) -> str:
    """``turn N: you said Q``: N counts the questions the model was shown, so a reply shows
    whether the thread's history (and only that thread's) reached the model."""
    questions = [str(m.content) for m in messages if isinstance(m, HumanMessage)]
    return f"turn {len(questions)}: you said {questions[-1]}"


class TenantMemory:
    """A knowledge base per tenant: recall returns that tenant's documents only."""

    DOCS = {
        "acme": [("acme-handbook.md", "Annual leave at Acme is 25 days per year for every employee.")],
        "globex": [("globex-handbook.md", "Annual leave at Globex is 30 days per year for every employee.")],
    }

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant

    def recall(
        self,
        query: str,
        *,
        k: int = 4,
        namespace: str | None = None,
        user_id: str | None = None,
        filters: dict | None = None,
    ) -> list[Passage]:
        return [
            Passage(id=f"{src}#0", text=text, source=src, chunk=0, score=0.9)
            for src, text in self.DOCS.get(self.tenant, [])
        ][:k]

    def remember(self, **kwargs: Any) -> None:
        pass


@tool
def send_email(to: str, body: str) -> str:
    """Send an email (a side effect: the policy asks before it runs)."""
    SENT_EMAILS.append({"to": to, "body": body})
    return f"sent to {to}"


def leave_answer(messages: list[Any]) -> str:
    """Answers from the passage the model is shown with the question (Acme's or Globex's)."""
    last = str(messages[-1].content)
    days = "25" if "Acme" in last else "30" if "Globex" in last else "?"
    company = "Acme" if days == "25" else "Globex"
    return f"Annual leave at {company} is {days} days per year [1]."


def scripted_catalog(checkpointer: Any, *, slow: float = 0.0, script: list[Any] | None = None) -> AgentCatalog:
    """Agents for the tests, built per tenant:

    - ``echo``: ``counting_echo`` (``slow`` seconds per call), no tools, no memory;
    - ``calc``: calls the calculator once, then answers from its result;
    - ``handbook``: the tenant's knowledge (:class:`TenantMemory`), answers citing it;
    - ``mailer``: asks to send an email (an "ask" tool), then answers.
    """

    def echo(messages: list[Any]) -> str:
        if slow:
            time.sleep(slow)
        return counting_echo(messages)

    def calc_reply(messages: list[Any]) -> Any:
        last = messages[-1]
        if getattr(last, "type", "") == "tool":
            return f"The result is {last.content}."
        return tool_call("calculator", expression="17*23")

    def mail_reply(messages: list[Any]) -> Any:
        last = messages[-1]
        if getattr(last, "type", "") == "tool":
            return f"Email step: {last.content}"
        return tool_call("send_email", to="boss@example.com", body="hello")

    from chatloom.tools.calculator import calculator

    common = {"checkpointer": checkpointer, "approver": http_approver}
    factories = {
        "echo": lambda tenant: Agent(model=FakeChatModel(list(script or []), default=echo), **common),
        "calc": lambda tenant: Agent(model=FakeChatModel(default=calc_reply), tools=[calculator], **common),
        "handbook": lambda tenant: Agent(
            model=FakeChatModel(default=leave_answer), memory=TenantMemory(tenant), **common
        ),
        "mailer": lambda tenant: Agent(
            model=FakeChatModel(default=mail_reply), tools=[send_email], tool_policy={"send_email": "ask"}, **common
        ),
    }
    return AgentCatalog(factories, checkpointer=checkpointer, descriptions={"echo": "repeats you"})


@contextlib.contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free 127.0.0.1 port; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def echo_workspace(root: Path) -> Path:
    """A bot workspace with one agent, ``echo`` (no tools, no memory), for `chatloom serve`."""
    (root / "agents").mkdir(parents=True, exist_ok=True)
    (root / "agents" / "echo.yaml").write_text(
        "name: echo\ndescription: repeats you\nprompt: assistant\n", encoding="utf-8"
    )
    return root


def start_serve(
    workspace: Path,
    home: Path,
    *,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    model: str = "fake:echo",
) -> tuple[subprocess.Popen, str, Path]:
    """Start ``chatloom serve --model MODEL`` as a subprocess and wait until it serves; returns
    (process, base URL, its log file). The caller stops it (see :func:`serve_process`)."""
    port = free_port()
    log = home / f"serve-{port}.log"
    full_env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "CHATLOOM_HOME": str(home),
        "CHATLOOM_CONFIG": str(home / "no-chatloom.toml"),
        **(env or {}),
    }
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chatloom.cli.main",
                "serve",
                "--model",
                model,
                "--port",
                str(port),
                "--workspace",
                str(workspace),
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=workspace,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, f"{url}/health", what="chatloom serve")
    except RuntimeError as exc:
        stop(proc)
        raise RuntimeError(f"{exc}: {log.read_text()}") from None
    return proc, url, log


stop = stop_process


@contextlib.contextmanager
def serve_process(
    workspace: Path, home: Path, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[tuple[str, Path]]:
    """``chatloom serve --model fake:echo`` as a subprocess; yields (base URL, its log file)."""
    proc, url, log = start_serve(workspace, home, env=env, args=args)
    try:
        yield url, log
    finally:
        stop(proc)


def config(**kwargs: Any) -> ServerConfig:
    return ServerConfig(tenants=TENANTS, **kwargs)
