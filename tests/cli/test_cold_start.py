"""Guards for a cold `chatloom ask` and a piped `chatloom chat`: what they import.

No timings here (the machine is shared); benchmarks/bench_cold_start.py (local) and
benchmarks/bench_startup.py (remote, next to `llm`) measure them.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Costly to import and useless to a turn that has no memory and a non-local model.
NOT_FOR_A_PLAIN_TURN = (
    "chromadb",
    "onnxruntime",
    "bm25s",
    "scipy",
    "numpy",
    "torch",
    "transformers",
    "sentence_transformers",
    "kiwipiepy",
    "llama_cpp",
    "mcp",
    "openai",
    "prompt_toolkit",
)


@pytest.mark.parametrize(
    "command, stdin", [(["ask", "--model", "fake:echo", "hi"], ""), (["chat", "--model", "fake:echo"], "hi\n")]
)
def test_a_plain_turn_imports_no_memory_or_model_stack(tmp_path, command, stdin):
    """`ask`, or a piped `chat`, on an agent without memory (no spec here) opens no Chroma and loads no ML library."""
    code = (
        f"import sys; from chatloom.cli.main import run; code = run({command!r}); "
        f"print('HEAVY', [m for m in {NOT_FOR_A_PLAIN_TURN!r} if m in sys.modules], code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        input=stdin,
        env={**os.environ, "CHATLOOM_HOME": str(tmp_path)},
        timeout=300,
    )
    assert "You said: hi" in done.stdout, done.stdout + done.stderr
    assert "HEAVY [] 0" in done.stdout, done.stdout + done.stderr
