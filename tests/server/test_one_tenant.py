"""One tenant story: a keyless `chatloom serve` reads what `chatloom ingest` wrote and says when a
knowledge bot has nothing to read; and no client (HTTP, native, MCP) ever sees the server's paths."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from serverhelpers import echo_workspace, live_server, serve_process

from chatloom.testing import FakeChatModel

# The shared ONNX export and data-dir fixture of tests/memory (ingesting needs the bundled
# embedding model).
_spec = importlib.util.spec_from_file_location(
    "chatloom_memory_fixtures_tenant", Path(__file__).parents[1] / "memory" / "conftest.py"
)
_memory_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_memory_fixtures)
onnx_cache = _memory_fixtures.onnx_cache
home = _memory_fixtures.home

LEAVE = "# Annual leave\nEvery employee gets 25 days of annual leave per year.\n"


def kb_workspace(root: Path) -> Path:
    """The echo workspace plus ``kb``, which answers from the namespace ``faq``."""
    echo_workspace(root)
    (root / "agents" / "kb.yaml").write_text(
        "name: kb\ndescription: answers from the FAQ\nprompt: assistant\nmemory: {enabled: true, namespace: faq}\n",
        encoding="utf-8",
    )
    return root


def cli_ingest(*args: str) -> None:
    """`chatloom ingest ARGS`, through the CLI's own code path (in this process)."""
    from chatloom.cli.main import cli

    result = CliRunner().invoke(cli, ["ingest", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_a_keyless_server_answers_from_what_chatloom_ingest_stored(tmp_path, home, monkeypatch):
    docs = tmp_path / "docs"
    (docs / "hr").mkdir(parents=True)
    (docs / "hr" / "leave.md").write_text(LEAVE, encoding="utf-8")
    cli_ingest(str(docs), "-n", "faq")  # no --tenant, as a new user runs it

    # A scripted model that records what it is shown and answers from the passage.
    shown: list[str] = []

    def answer(messages: list[Any]) -> str:
        shown.append("\n".join(str(m.content) for m in messages))
        return "Every employee gets 25 days of annual leave per year [1]."

    import chatloom.models

    monkeypatch.setattr(chatloom.models, "resolve_model", lambda *a, **k: FakeChatModel(default=answer))
    from chatloom.server.agents import workspace_catalog
    from chatloom.server.app import create_app
    from chatloom.server.config import ServerConfig

    catalog = workspace_catalog(kb_workspace(tmp_path / "ws"), model="fake:recording")
    with live_server(create_app(catalog, ServerConfig())) as url:
        health = httpx.get(f"{url}/health").json()
        r = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "kb", "messages": [{"role": "user", "content": "How many days of annual leave do I get?"}]},
            timeout=120,
        )
        native = httpx.post(
            f"{url}/v1/agents/kb/turns",
            json={"input": "How many days of annual leave do I get?", "stream": False},
            timeout=120,
        )
    assert health["knowledge"] == {"kb": {"namespace": "faq", "empty": False, "tenant": "default"}}
    assert r.status_code == 200, r.text
    assert any("25 days of annual leave" in prompt for prompt in shown), shown  # the passage reached the model
    reply = r.json()
    assert "25 days" in reply["choices"][0]["message"]["content"]
    # Cited by its path under the folder given to `chatloom ingest`, never the server's path.
    assert [c["source"] for c in reply["chatloom"]["citations"]] == ["hr/leave.md"]
    assert native.status_code == 200 and [c["source"] for c in native.json()["citations"]] == ["hr/leave.md"]
    for body in (r.text, native.text):
        assert str(tmp_path) not in body and str(docs) not in body


def test_an_empty_knowledge_namespace_is_reported_on_start_and_in_health(tmp_path, home):
    ws = kb_workspace(tmp_path / "ws")
    env = {"CHATLOOM_API_KEYS": ""}
    with serve_process(ws, home, env=env) as (url, log):
        assert httpx.get(f"{url}/health").json()["knowledge"] == {
            "kb": {"namespace": "faq", "empty": True, "tenant": "default"}
        }
        started = log.read_text()
        assert "tenant 'default'" in started
        assert "model 'kb' answers from namespace 'faq', which is empty for tenant 'default'" in started
        assert "chatloom ingest DOCS/ -n faq" in started and "Traceback" not in started
        docs = tmp_path / "docs"
        docs.mkdir()
        (docs / "leave.md").write_text(LEAVE, encoding="utf-8")
        cli_ingest(str(docs), "-n", "faq")
        # /health looks again on every call: no restart needed once the documents are in.
        assert httpx.get(f"{url}/health").json()["knowledge"]["kb"]["empty"] is False


def test_knowledge_kept_under_the_old_keyless_tenant_is_pointed_at_and_still_served(tmp_path, home):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text(LEAVE, encoding="utf-8")
    cli_ingest(str(docs), "-n", "faq", "--tenant", "local")  # the workaround users were told
    ws = kb_workspace(tmp_path / "ws")
    with serve_process(ws, home, env={"CHATLOOM_API_KEYS": ""}) as (url, log):
        assert httpx.get(f"{url}/health").json()["knowledge"]["kb"]["empty"] is True
    assert "serve them with --tenant local" in log.read_text()
    with serve_process(ws, home, env={"CHATLOOM_API_KEYS": ""}, args=("--tenant", "local")) as (url, log):
        assert httpx.get(f"{url}/health").json()["knowledge"]["kb"] == {
            "namespace": "faq",
            "empty": False,
            "tenant": "local",
        }
        reply = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "kb", "messages": [{"role": "user", "content": "How many days of annual leave?"}]},
            timeout=120,
        ).json()
    assert [c["source"] for c in reply["chatloom"]["citations"]] == ["leave.md"]
    assert "warning" not in log.read_text()


def test_health_on_a_keyed_server_names_no_tenant_without_a_key(tmp_path, home):
    key = "acme-key-0123456789abcdef"
    ws = kb_workspace(tmp_path / "ws")
    with serve_process(ws, home, env={"CHATLOOM_API_KEYS": f"acme={key}"}) as (url, log):
        anonymous = httpx.get(f"{url}/health").json()["knowledge"]
        mine = httpx.get(f"{url}/health", headers={"Authorization": f"Bearer {key}"}).json()["knowledge"]
    assert anonymous == {"kb": {"namespace": "faq", "empty": True, "empty_tenants": 1}}
    assert "acme" not in json.dumps(anonymous)
    assert mine == {"kb": {"namespace": "faq", "empty": True, "tenant": "acme"}}
    assert "empty for tenant 'acme'" in log.read_text() and "-n faq --tenant acme" in log.read_text()


def test_local_tenant_is_refused_beside_api_keys():
    from chatloom.errors import ConfigError
    from chatloom.server.config import ServerConfig, Tenant

    with pytest.raises(ConfigError, match="applies only to a server without API keys"):
        ServerConfig(tenants=(Tenant("acme", ("k" * 24,)),), local_tenant="local")
    with pytest.raises(ConfigError, match="not allowed"):
        ServerConfig(local_tenant="a/b")


def test_mcp_clients_get_citations_without_the_servers_paths(tmp_path, home):
    import anyio
    from mcp import Client

    from chatloom.mcp.server import server_from_spec

    docs = tmp_path / "docs"
    (docs / "hr").mkdir(parents=True)
    (docs / "hr" / "leave.md").write_text(LEAVE, encoding="utf-8")
    cli_ingest(str(docs), "-n", "faq")
    ws = kb_workspace(tmp_path / "ws")
    spec = ws / "agents" / "kb.yaml"
    spec.write_text(spec.read_text(encoding="utf-8") + "model: fake:echo\n", encoding="utf-8")
    server, close = server_from_spec(spec, ask=True)

    async def session() -> tuple[Any, Any]:
        async with Client(server) as client:
            found = await client.call_tool("knowledge_search", {"query": "annual leave days"})
            answer = await client.call_tool("ask", {"question": "How many days of annual leave do I get?"})
            return found, answer

    try:
        found, answer = anyio.run(session)
    finally:
        close()
    assert found.content[0].text.startswith("[1] (hr/leave.md#0)")
    assert [c["source"] for c in found.structured_content["citations"]] == ["hr/leave.md"]
    assert "25 days" in answer.content[0].text
    assert [c["source"] for c in answer.structured_content["citations"]] == ["hr/leave.md"]
    for result in (found, answer):
        dumped = json.dumps([result.structured_content, [c.text for c in result.content]])
        assert str(tmp_path) not in dumped


def test_health_says_when_the_knowledge_store_fails_and_stays_ok(checkpointer):
    from chatloom.errors import MemoryStoreError
    from chatloom.server.agents import AgentCatalog
    from chatloom.server.app import create_app

    def broken(namespace: str, tenant: str) -> bool:
        raise MemoryStoreError("the memory index is corrupt")

    catalog = AgentCatalog({}, checkpointer=checkpointer, knowledge={"kb": "faq"}, has_knowledge=broken)
    with live_server(create_app(catalog)) as url:
        r = httpx.get(f"{url}/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "knowledge": {"error": "the knowledge store fails (MemoryStoreError)"}}
