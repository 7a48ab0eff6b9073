"""MCP both ways, in one script.

    python examples/mcp/demo.py [--model MODEL]

1. chatloom as an MCP *client*: an agent gets the tools of units_server.py (an MCP server
   over stdio) as ``units.convert`` and ``units.save_favourite``. Without --model a scripted
   model plays the part of the LLM, so this runs with no weights; try ``--model
   local:qwen2.5-coder-0.5b`` or ``--model openai:gpt-4o-mini``.
2. chatloom as an MCP *server*: ``chatloom mcp serve`` exposes the calculator, and the `mcp`
   SDK's own client lists and calls it, as Claude Desktop or any MCP client would.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import anyio

from chatloom import Agent
from chatloom.mcp.config import MCPServerSpec
from chatloom.testing import FakeChatModel, tool_call

HERE = Path(__file__).resolve().parent


def as_client(model_id: str | None) -> None:
    units = MCPServerSpec(name="units", command=sys.executable, args=[str(HERE / "units_server.py")])
    model = model_id or FakeChatModel(
        [
            tool_call("units.convert", value=42.195, from_unit="km", to_unit="mi"),
            tool_call("units.save_favourite", conversion="marathon in miles"),
            "A marathon is 26.22 miles.",
        ]
    )
    # No approver: the un-annotated save_favourite is refused; the read-only convert just runs.
    with Agent(model=model, prompt="assistant", mcp_servers=[units], checkpointer="memory") as agent:
        print("tools:", ", ".join(t.name for t in agent.tools()))
        reply = agent.chat("How many miles is a marathon? Save it as a favourite.")
        for step in reply.tool_steps:
            # a successful MCP result arrives wrapped as untrusted data: show just its body;
            # a call that did not run (refused, failed, repeated) says why on its last line
            body = " ".join(step.result.splitlines()[2:-1]) if step.ok else step.result.splitlines()[-1]
            print(f"  {step.name} -> {'ok' if step.ok else 'not run'}: {body[:110]}")
        print("answer:", reply.answer)


def as_server() -> None:
    from mcp import Client, StdioServerParameters

    work = Path(tempfile.mkdtemp(prefix="chatloom-mcp-demo-"))
    (work / "agents").mkdir()
    (work / "agents" / "calc.yaml").write_text("tools: [calculator]\nmemory: false\n")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "chatloom.cli.main", "mcp", "serve", "--spec", str(work / "agents" / "calc.yaml")],
        env={"CHATLOOM_HOME": str(work), **({"PYTHONPATH": p} if (p := _src()) else {})},
    )

    async def session() -> None:
        async with Client(params) as client:
            tools = (await client.list_tools()).tools
            print("served tools:", ", ".join(t.name for t in tools))
            result = await client.call_tool("calculator", {"expression": "17*23"})
            print("calculator(17*23) over MCP:", result.content[0].text)

    anyio.run(session)


def _src() -> str:
    """This checkout's src/, so the served chatloom is the same one running this demo."""
    import chatloom

    return str(Path(chatloom.__file__).resolve().parents[1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="MCP both ways")
    parser.add_argument("--model", help="a model id; default: a scripted stand-in")
    as_client(parser.parse_args().model)
    as_server()
