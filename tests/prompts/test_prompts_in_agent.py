"""The prompt contract as the agent uses it: spec -> template -> messages -> visible answer."""

from pathlib import Path

from langchain_core.messages import SystemMessage

from chatloom.agents.agent import Agent
from chatloom.testing import FakeChatModel, tool_call

REPO = Path(__file__).resolve().parents[2]


def test_cot_spec_hides_reasoning_and_sends_the_rendered_prompt(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATLOOM_HOME", str(tmp_path))
    seen: list = []

    def reply(messages):
        seen.append(messages)
        return "<think>120 / 1.5 = 80</think>It averages 80 km/h."

    agent = Agent.from_spec(REPO / "agents" / "tutor.yaml", model=FakeChatModel([reply]), checkpointer="memory")
    result = agent.chat("A train goes 120 km in 1.5 h. Average speed?")
    assert result.answer == "It averages 80 km/h."
    assert "120 / 1.5 = 80" in result.reasoning
    system = seen[0][0]
    assert isinstance(system, SystemMessage)
    assert "a secondary-school student" in system.content  # the spec's variables reached the template
    assert "<think>" in system.content and "calculator(expression: string)" in system.content
    assert "unit_convert(" in system.content  # the workspace tool, named in the spec


def test_workspace_tool_runs_inside_a_turn(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATLOOM_HOME", str(tmp_path))
    model = FakeChatModel([tool_call("unit_convert", value=5, from_unit="mi", to_unit="km"), "About 8.05 km."])
    agent = Agent.from_spec(REPO / "agents" / "tutor.yaml", model=model, checkpointer="memory")
    result = agent.chat("How far is 5 miles in km?")
    assert result.answer == "About 8.05 km."
    assert result.tool_steps[0].name == "unit_convert" and "5 mi = 8.04672 km" in result.tool_steps[0].result
