"""Replies that look fine but are broken: a stream cut before its end, a 200 that is not JSON.

Both run against the replay server (a real HTTP server on 127.0.0.1). Neither may be taken
for an answer: each is a BackendError that names the server, and nothing is stored.
"""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage
from openai_replay import ReplayServer, Reply, fixture, isolate_openai_env, replay_model

from chatloom.errors import BackendError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    isolate_openai_env(monkeypatch, tmp_path)


@pytest.fixture()
def srv():
    with ReplayServer() as server:
        yield server


def make(srv, **options):
    options.setdefault("max_retries", 0)
    return replay_model(srv, **options)


def cut_stream() -> str:
    """The recorded token stream without its finish_reason event, usage event and [DONE]:
    the connection closes cleanly mid-answer, as when a proxy times out."""
    events = [e for e in fixture("stream_text.sse").split("\n\n") if e.strip()]
    kept = [e for e in events if '"finish_reason": "stop"' not in e and "[DONE]" not in e and '"choices": []' not in e]
    assert len(kept) == len(events) - 3
    return "\n\n".join(kept[:5]) + "\n\n"  # "17 × 23 =" and then nothing


def test_a_stream_cut_mid_answer_is_a_backend_error(srv):
    srv.add(Reply(sse=cut_stream()))
    got = []
    with pytest.raises(BackendError) as info:
        for chunk in make(srv).stream("What is 17*23?"):
            got.append(chunk.content)
    assert "17" in got  # it had started
    assert str(info.value).startswith(f"the reply from {srv.base_url!r} was cut off")
    assert "finish_reason" in str(info.value)


def test_a_complete_stream_still_passes(srv):
    srv.add(Reply(sse=fixture("stream_text.sse")))
    assert "".join(c.content for c in make(srv).stream("hi")) == "17 × 23 = 391."


def test_a_cut_stream_is_never_stored_as_the_answer(srv):
    from chatloom import Agent
    from chatloom.agents.reply import AnswerEvent

    srv.add(Reply(sse=cut_stream()), Reply(sse=fixture("stream_text.sse")))
    agent = Agent(model=make(srv), memory=False)
    with pytest.raises(BackendError, match="cut off"):
        for event in agent.stream("What is 17*23?", thread_id="t"):
            assert not isinstance(event, AnswerEvent), "a cut-off reply was given as the answer"
    assert not [m for m in agent.history("t") if isinstance(m, AIMessage)]
    # The conversation goes on: the next, complete reply is the answer.
    events = list(agent.stream("What is 17*23?", thread_id="t"))
    assert events[-1].reply.answer == "17 × 23 = 391."
    answers = [m.content for m in agent.history("t") if isinstance(m, AIMessage)]
    assert answers == ["17 × 23 = 391."]


@pytest.mark.parametrize(
    ("raw", "content_type", "detail"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "text/html", "502 Bad Gateway"),
        (b'{"id": "chatcmpl-1", "choices": [', "application/json", "not JSON"),
        (b"", "application/json", "empty body"),
    ],
    ids=["html-page", "truncated-json", "empty"],
)
def test_a_200_that_is_not_a_completion_blames_the_server_with_its_url(srv, raw, content_type, detail):
    srv.add(Reply(raw=raw, content_type=content_type))
    with pytest.raises(BackendError) as info:
        make(srv).invoke("hi")
    message = str(info.value)
    assert message.startswith(f"{srv.base_url!r} answered HTTP 200, but with a body that is not a chat completion")
    assert detail in message and "the server is at fault" in message
    assert "please report" not in message and "\n" not in message


def test_a_200_html_page_for_a_streamed_request_blames_the_server_too(srv):
    srv.add(Reply(raw=b"<html>oops</html>", content_type="text/html"))
    with pytest.raises(BackendError) as info:
        list(make(srv).stream("hi"))
    assert str(info.value).startswith(
        f"{srv.base_url!r} answered HTTP 200, but with a body that is not a chat completion"
    )
    assert "no events" in str(info.value)


def test_a_200_that_is_not_json_is_one_error_line_in_the_cli(srv, monkeypatch, capsys):
    from chatloom.cli.main import run

    monkeypatch.setenv("CHATLOOM_OPENAI_BASE_URL", srv.base_url)
    srv.add(Reply(raw=b"<html>oops</html>", content_type="text/html"))
    assert run(["ask", "--model", "openai:gpt-4o-mini", "hi"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {srv.base_url!r} answered HTTP 200"), err
    assert "internal error" not in err[0]
