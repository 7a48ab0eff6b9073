"""The examples run as written (on the scripted ``fake:echo`` model, so no weights are needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(script: str, *args: str, home: Path) -> str:
    env = {**os.environ, "CHATLOOM_HOME": str(home), "CHATLOOM_MODEL": "fake:echo"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_custom_backend(tmp_path):
    assert run_example("custom_backend.py", home=tmp_path).strip() == "HELLO FROM A CUSTOM BACKEND!"


def test_streaming(tmp_path):
    out = run_example("streaming.py", "hi there", home=tmp_path)
    assert "answer: You said: hi there" in out and "usage:" in out


def test_hr_bot_ingests_then_answers(tmp_path):
    out = run_example("hr_bot/bot.py", "What is the hotel limit?", home=tmp_path)
    assert "3 added" in out and "6 chunks added" in out, out
    # fake:echo repeats the question turn, passages included; grounding keeps what a passage
    # supports and cites it.
    answer = out.split("A: ", 1)[1]
    assert "150 EUR per night" in answer and "   [1] expenses.md" in answer, answer
    again = run_example("hr_bot/bot.py", "What is the hotel limit?", home=tmp_path)
    assert "0 added, 0 updated, 3 unchanged" in again  # the second ingest finds nothing new
