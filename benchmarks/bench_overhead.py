"""Startup time and per-turn graph overhead.

    python benchmarks/bench_overhead.py [--quick]

- ``chatloom --help`` and the time until the chat prompt is on screen, next to a bare
  ``python -c pass`` measured in the same run;
- one turn (model -> tool -> model) with an instant scripted model through chatloom's graph,
  next to ``langchain.agents.create_agent`` with the same model and tool. Target: ratio <= 1.0.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_ms, save, time_calls


def scripted_model():
    from langchain_core.messages import AIMessage, ToolMessage

    from chatloom.testing import FakeChatModel

    def reply(messages):
        if isinstance(messages[-1], ToolMessage):
            return "17*23 is 391."
        return AIMessage(
            content="",
            tool_calls=[{"name": "calculator", "args": {"expression": "17*23"}, "id": "", "type": "tool_call"}],
        )

    return FakeChatModel(default=reply)


def bench_turns(repeat: int) -> dict:
    from langchain.agents import create_agent
    from langchain_core.messages import HumanMessage
    from langgraph.checkpoint.memory import InMemorySaver

    from chatloom import Agent
    from chatloom.tools.calculator import calculator

    agent = Agent(model=scripted_model(), tools=[calculator], checkpointer=InMemorySaver())
    baseline = create_agent(model=scripted_model(), tools=[calculator], checkpointer=InMemorySaver())

    def chatloom_turn():
        reply = agent.chat("How many seats are in 17 rows of 23?", thread_id=uuid.uuid4().hex)
        assert reply.answer == "17*23 is 391." and len(reply.tool_steps) == 1

    def baseline_turn():
        out = baseline.invoke(
            {"messages": [HumanMessage("How many seats are in 17 rows of 23?")]},
            {"configurable": {"thread_id": uuid.uuid4().hex}},
        )
        assert out["messages"][-1].content == "17*23 is 391."

    # Interleave rounds so that machine noise hits both sides alike.
    ours, theirs = [], []
    for _ in range(5):
        ours += time_calls(chatloom_turn, repeat // 5)
        theirs += time_calls(baseline_turn, repeat // 5)
    return {
        "chatloom_ms": median_ms(ours),
        "create_agent_ms": median_ms(theirs),
        "ratio": median_ms(ours) / median_ms(theirs),
    }


def bench_startup(repeat: int) -> dict:
    env = {**os.environ, "CHATLOOM_HOME": tempfile.mkdtemp(prefix="chatloom-bench-")}
    chatloom = [sys.executable, "-m", "chatloom.cli.main"]

    def run(cmd):
        subprocess.run(cmd, env=env, check=True, capture_output=True)

    python = time_calls(lambda: run([sys.executable, "-c", "pass"]), repeat, warmup=1)
    help_ = time_calls(lambda: run(chatloom + ["--help"]), repeat, warmup=1)
    prompt = time_calls(lambda: time_to_prompt(chatloom, env), repeat, warmup=1)
    return {"python_ms": median_ms(python), "help_ms": median_ms(help_), "prompt_ms": median_ms(prompt)}


def time_to_prompt(cmd: list[str], env: dict) -> None:
    """Start the REPL on a pseudo-terminal and stop at the first '›' prompt character."""
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # child: become the REPL
        os.execvpe(cmd[0], cmd + ["chat", "--model", "fake:echo"], env)
    seen = b""
    deadline = time.monotonic() + 30
    try:
        while "›".encode() not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                seen += os.read(fd, 4096)
        if "›".encode() not in seen:
            raise RuntimeError(f"no prompt within 30 s; screen: {seen[-400:]!r}")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    args = parser.parse_args()
    startup = bench_startup(3 if args.quick else 15)
    turns = bench_turns(50 if args.quick else 500)
    print(f"{'measure':<38}{'median':>12}")
    print(f"{'python -c pass':<38}{startup['python_ms']:>10.1f}ms")
    print(f"{'chatloom --help':<38}{startup['help_ms']:>10.1f}ms")
    print(f"{'chatloom chat: time to prompt':<38}{startup['prompt_ms']:>10.1f}ms")
    print(f"{'turn, chatloom (model->tool->model)':<38}{turns['chatloom_ms']:>10.2f}ms")
    print(f"{'turn, langchain create_agent':<38}{turns['create_agent_ms']:>10.2f}ms")
    print(f"{'ratio chatloom / create_agent':<38}{turns['ratio']:>11.2f}x  (target <= 1.0)")
    print("wrote", save("overhead", {"startup": startup, "turns": turns}))


if __name__ == "__main__":
    main()
