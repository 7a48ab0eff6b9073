"""Guards for a cold `chatloom ask`: what it imports.

No timings here (the machine is shared); benchmarks/bench_cold_start.py measures them.
"""

from __future__ import annotations

import os
import subprocess
import sys

# Costly to import and useless to a turn that has no memory and a non-local model.
NOT_FOR_A_PLAIN_TURN = (
    "chromadb", "onnxruntime", "bm25s", "scipy", "numpy", "torch", "transformers",
    "sentence_transformers", "kiwipiepy", "llama_cpp", "mcp", "openai", "prompt_toolkit",
)


def test_ask_without_memory_imports_no_memory_or_model_stack(tmp_path):
    """`ask` on an agent without memory (no spec here) opens no Chroma and loads no ML library."""
    code = (
        "import sys; from chatloom.cli.main import run; code = run(['ask', '--model', 'fake:echo', 'hi']); "
        f"print('HEAVY', [m for m in {NOT_FOR_A_PLAIN_TURN!r} if m in sys.modules], code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "CHATLOOM_HOME": str(tmp_path)}, timeout=300,
    )
    assert "You said: hi" in done.stdout, done.stdout + done.stderr
    assert "HEAVY [] 0" in done.stdout, done.stdout + done.stderr
