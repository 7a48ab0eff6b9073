"""Structured logs, callbacks and OpenTelemetry spans of each step, with no secrets in them."""

from __future__ import annotations

import io
import json
import re

import httpx
import pytest
from serverhelpers import KEY_A, KEY_B, config, live_server, scripted_catalog

from chatloom.server.app import create_app
from chatloom.server.observe import configure_json_logs, log

PLANTED = "sk-planted-SECRET-5b8e1d"


@pytest.fixture
def json_log():
    stream = io.StringIO()
    handler = configure_json_logs(stream)
    yield stream
    log.removeHandler(handler)
    log.propagate = True


def test_each_step_is_a_json_record_without_keys_or_contents(checkpointer, json_log):
    records: list[dict] = []
    app = create_app(scripted_catalog(checkpointer), config(), on_event=[records.append])
    with live_server(app) as url:
        H = {"Authorization": f"Bearer {KEY_A}"}
        httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "calc", "messages": [{"role": "user", "content": f"17*23, my password is {PLANTED}"}]},
            headers=H,
            timeout=30,
        )
        httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": PLANTED}]},
            headers={**H, "X-Chatloom-Thread": "t"},
            timeout=30,
        )
        httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "echo", "messages": []},
            headers={"Authorization": f"Bearer {KEY_B}x"},
            timeout=30,
        )
    text = json_log.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    events = [r["event"] for r in lines]
    assert events.count("turn.start") == 2 and events.count("turn.end") == 2
    assert [e for e in events if e.startswith("tool.")] == ["tool.call", "tool.result"]
    end = next(r for r in lines if r["event"] == "turn.end" and r["agent"] == "calc")
    assert end["tenant"] == "acme" and end["tool_calls"] == 1 and end["stop_reason"] == "answer" and end["ms"] >= 0
    assert "route" in end  # which kind of request the turn was (None: an agent without memory)
    assert any(r["event"] == "http.request" and r["status"] == 401 for r in lines)
    # A timing may be 391 by chance (a turn of 391 ms), so timings are left out of the search.
    untimed = json.dumps([{k: v for k, v in r.items() if k != "ms"} for r in lines], ensure_ascii=False)
    for secret in (KEY_A, KEY_B, PLANTED, "17*23", "391"):
        # Not inside a longer hex run: the records' random ids (a span id "5dcbc38429391b3b"
        # failed this once) may contain "391" by chance.
        assert not re.search(rf"(?<![0-9a-f]){re.escape(secret)}(?![0-9a-f])", untimed), secret
    assert [r["event"] for r in records] == events  # callbacks see the same records
    assert PLANTED not in json.dumps(records)


def test_a_failing_callback_does_not_break_the_turn(checkpointer):
    def broken(record: dict) -> None:
        raise RuntimeError("observer bug")

    app = create_app(scripted_catalog(checkpointer), config(), on_event=[broken])
    with live_server(app) as url:
        r = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {KEY_A}"},
            timeout=30,
        )
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "turn 1: you said hi"


def test_opentelemetry_spans_follow_the_genai_conventions(checkpointer):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # once per process; later tests record into it harmlessly
    if trace.get_tracer_provider() is not provider:
        pytest.skip("another test set the global OpenTelemetry provider first")
    app = create_app(scripted_catalog(checkpointer), config())
    with live_server(app) as url:
        httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "calc", "messages": [{"role": "user", "content": "17 rows of 23 seats?"}]},
            headers={"Authorization": f"Bearer {KEY_A}", "X-Chatloom-Thread": "otel"},
            timeout=30,
        )
    spans = {s.name: s for s in exporter.get_finished_spans()}
    agent, tool = spans["invoke_agent calc"], spans["execute_tool calculator"]
    assert (
        agent.attributes["gen_ai.operation.name"] == "invoke_agent"
        and agent.attributes["gen_ai.conversation.id"] == "otel"
    )
    assert agent.attributes["gen_ai.usage.input_tokens"] > 0
    assert (
        tool.attributes["gen_ai.operation.name"] == "execute_tool"
        and tool.attributes["gen_ai.tool.name"] == "calculator"
    )
    assert tool.parent.span_id == agent.context.span_id


def test_without_a_provider_tracing_is_a_no_op():
    import subprocess
    import sys

    code = (
        "from chatloom.server.observe import Observer\n"
        "from opentelemetry import trace\n"
        "t = Observer().turn(agent='a', tenant='t', thread_id='x', request_id='r')\n"
        "print(type(trace.get_tracer_provider()).__name__, t._span.is_recording())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["ProxyTracerProvider", "False"]
