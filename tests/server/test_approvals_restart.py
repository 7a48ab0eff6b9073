"""A paused tool approval survives killing `chatloom serve`: a new server process on the same
data dir lists it, and approving it runs the tool once and finishes the turn."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import httpx
from serverhelpers import KEY_A, KEY_B, REPO, start_serve, stop

# A scripted model as a real plugin (a dist-info with an entry point), so `chatloom serve` in a
# subprocess can load it: it asks to send a note, then answers from the tool's result.
MODEL_PLUGIN = """
from chatloom.testing import FakeChatModel, tool_call
from chatloom.tools.policy import unwrap_untrusted


def _reply(messages):
    last = messages[-1]
    if getattr(last, "type", "") == "tool":
        return "Note step: " + unwrap_untrusted(str(last.content))
    return tool_call("send_note", text="hello boss")


def create(name, **options):
    return FakeChatModel(default=_reply)
"""

# A workspace tool with a side effect that outlives any process: a line in a file per run.
NOTE_TOOL = '''
import os

from langchain_core.tools import tool


@tool
def send_note(text: str) -> str:
    """Send a note to the boss (a side effect: the policy asks first)."""
    with open(os.environ["NOTES_FILE"], "a", encoding="utf-8") as out:
        out.write(text + "\\n")
    return "note sent: " + text
'''


def plugin_site(root: Path) -> Path:
    site = root / "site"
    info = site / "notebot_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: notebot-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[chatloom.models]\nnotebot = notebot_plugin:create\n")
    (site / "notebot_plugin.py").write_text(textwrap.dedent(MODEL_PLUGIN))
    return site


def note_workspace(root: Path) -> Path:
    (root / "agents").mkdir(parents=True)
    (root / "tools").mkdir()
    (root / "tools" / "send_note.py").write_text(textwrap.dedent(NOTE_TOOL))
    (root / "agents" / "noter.yaml").write_text(
        "name: noter\ndescription: sends notes\ntools: [send_note]\ntool_policy:\n  send_note: ask\n", encoding="utf-8"
    )
    return root


def test_a_pause_survives_a_killed_server(tmp_path: Path):
    notes = tmp_path / "notes.txt"
    site = plugin_site(tmp_path)
    workspace = note_workspace(tmp_path / "ws")
    home = tmp_path / "home"
    home.mkdir()

    env = {
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(site)]),
        "NOTES_FILE": str(notes),
        "CHATLOOM_API_KEYS": f"acme={KEY_A},globex={KEY_B}",
    }
    a, b = {"Authorization": f"Bearer {KEY_A}"}, {"Authorization": f"Bearer {KEY_B}"}

    proc, url, _ = start_serve(workspace, home, env=env, model="notebot:any")
    try:
        events = []
        with httpx.stream(
            "POST",
            f"{url}/v1/agents/noter/turns",
            json={"input": "tell my boss hello", "thread_id": "n1"},
            headers=a,
            timeout=60,
        ) as r:
            for line in r.iter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
        assert [e["type"] for e in events] == ["tool_call", "approval_required"], events
        asked = events[-1]
        assert asked["tool"] == "send_note" and asked["args"] == {"text": "hello boss"} and not notes.exists()
    finally:
        proc.kill()  # no shutdown: whatever survives is in the data dir
        proc.wait()

    proc, url, log = start_serve(workspace, home, env=env, model="notebot:any")
    try:
        listed = httpx.get(f"{url}/v1/approvals", headers=a).json()["data"]
        assert [(x["approval_id"], x["thread_id"], x["tool"], x["model"]) for x in listed] == [
            (asked["approval_id"], "n1", "send_note", "noter")
        ]
        # The other tenant neither sees nor decides it.
        assert httpx.get(f"{url}/v1/approvals", headers=b).json()["data"] == []
        denied = httpx.post(f"{url}/v1/approvals/{asked['approval_id']}", json={"approve": True}, headers=b, timeout=60)
        assert denied.status_code == 404 and not notes.exists()

        r = httpx.post(f"{url}/v1/approvals/{asked['approval_id']}", json={"approve": True}, headers=a, timeout=60)
        assert r.status_code == 200, log.read_text()
        rest = r.json()["events"]
        assert notes.read_text() == "hello boss\n"  # ran exactly once
        assert rest[-1]["type"] == "answer" and rest[-1]["answer"] == "Note step: note sent: hello boss"
        assert httpx.get(f"{url}/v1/approvals", headers=a).json()["data"] == []
        assert (
            httpx.post(f"{url}/v1/approvals/{asked['approval_id']}", json={"approve": True}, headers=a).status_code
            == 404
        )
        thread = httpx.get(f"{url}/v1/threads/n1", headers=a).json()["messages"]
        assert [m["role"] for m in thread] == ["user", "tool_call", "tool", "assistant"]
    finally:
        stop(proc)
    assert notes.read_text() == "hello boss\n"
