"""examples/mcp/demo.py runs as written (scripted model, real MCP servers over stdio)."""

from __future__ import annotations

import os
import subprocess
import sys

from mcp_helpers import SRC

DEMO = SRC.parent / "examples" / "mcp" / "demo.py"


def test_mcp_demo_runs_both_ways(tmp_path):
    env = {**os.environ, "CHATLOOM_HOME": str(tmp_path), "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, str(DEMO)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "tools: units.convert, units.save_favourite" in out
    assert "units.convert -> ok: 42.195 km = 26.22 mi" in out
    assert "units.save_favourite -> not run: error: tool call refused by policy" in out
    assert "served tools: calculator" in out and "calculator(17*23) over MCP: 391" in out
