"""`chatloom prompts list|show|render` and `chatloom init`."""

import json
from pathlib import Path

import pytest

from chatloom.agents.spec import load_spec
from chatloom.cli.main import run
from chatloom.prompts import load_prompt
from chatloom.tools.registry import resolve_tools


def test_prompts_list(workspace, write, capsys):
    write("prompts/mine.yaml", "description: My own.\nrole: r\n")
    write("prompts/broken.yaml", "role: r\nbogus: 1\n")
    assert run(["prompts", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("mine", "assistant", "researcher", "tutor", "support", "classifier"):
        assert name in out
    assert "My own." in out and "workspace" in out and "builtin" in out
    assert "error: prompts/broken.yaml:2: unknown field 'bogus'" in out
    assert run(["prompts", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows][:2] == ["broken", "mine"]  # workspace first: lookup order


def test_prompts_show_applies_extends(workspace, write, capsys):
    write("prompts/kid.yaml", "extends: tutor\nvariables: {level: a 10-year-old}\n")
    assert run(["prompts", "show", "kid"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# kid: workspace, prompts/kid.yaml\n# extends: ")
    assert "reasoning: cot" in out and "level: a 10-year-old" in out and "role: |" in out
    assert "thinking:" in out  # the tutor's examples came along


def test_prompts_render_with_vars_and_tools(workspace, capsys):
    assert run(["prompts", "render", "support", "--var", "product=Widget Pro", "--tool", "calculator"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("── system ")
    assert "for Widget Pro" in out and "calculator(expression: string)" in out and "── human " in out
    assert run(["prompts", "render", "assistant", "--tool", "calculator", "--json"]) == 0
    messages = json.loads(capsys.readouterr().out)
    assert [m["type"] for m in messages][:5] == ["system", "human", "ai", "tool", "ai"]
    assert messages[2]["tool_calls"][0]["args"] == {"expression": "17*23"}


def test_prompts_render_an_agent_spec(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run(["init", "specbot"]) == 0
    capsys.readouterr()
    assert run(["prompts", "render", "--spec", "specbot/agents/assistant.yaml", "--var", "bot_name=Zed"]) == 0
    out = capsys.readouterr().out
    assert "You are Zed, a friendly assistant." in out
    assert "today(): Return today's date" in out and "→ today({})" in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["prompts", "render", "support", "--var", "product"], "--var 'product' is not KEY=VALUE"),
        (["prompts", "render", "support", "--var", "prodcut=x"], "has no variable 'prodcut'"),
        (["prompts", "show", "nope"], "unknown prompt 'nope'"),
        (["prompts", "render", "assistant", "--tool", "nope"], "unknown tool 'nope'"),
        (["prompts", "render"], "no template to render"),
    ],
)
def test_prompts_errors_are_one_line_and_exit_2(workspace, capsys, argv, expected):
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1


def test_init_scaffolds_a_workspace_that_loads(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run(["init", "mybot"]) == 0
    out = capsys.readouterr().out
    ws = tmp_path / "mybot"
    for rel in ("chatloom.toml", "agents/assistant.yaml", "prompts/mybot.yaml", "tools/today.py", "memory/about.md"):
        assert (ws / rel).is_file(), rel
        assert f"created  mybot/{rel}" in out
    assert "chatloom ask" in out

    spec = load_spec(ws / "agents" / "assistant.yaml")
    assert spec.name == "mybot" and spec.workspace == ws.resolve()
    tools = resolve_tools(spec.tools, spec.workspace)
    assert [t.name for t in tools] == ["calculator", "today"]
    assert tools[1].invoke({}).count("-") == 2
    prompt = load_prompt(spec.prompt, spec.workspace)
    messages = prompt.render(tools, spec.variables)
    assert messages[0].content.startswith("You are mybot, a friendly assistant.")
    assert any(getattr(m, "tool_calls", None) and m.tool_calls[0]["name"] == "today" for m in messages)
    assert "today(): Return today's date" in messages[0].content


def test_init_keeps_existing_files_unless_forced(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run(["init", "bot", "--name", "ada"]) == 0
    prompt = tmp_path / "bot" / "prompts" / "ada.yaml"
    prompt.write_text("role: edited\n")
    capsys.readouterr()
    assert run(["init", "bot", "--name", "ada"]) == 0
    assert "kept     bot/prompts/ada.yaml" in capsys.readouterr().out
    assert prompt.read_text() == "role: edited\n"
    assert run(["init", "bot", "--name", "ada", "--force"]) == 0
    assert "extends: assistant" in prompt.read_text()


def test_init_into_a_file_fails_cleanly(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("taken").write_text("x")
    assert run(["init", "taken"]) != 0


def test_scaffolded_bot_answers_right_away(tmp_path, monkeypatch, capsys):
    """`chatloom init DIR && cd DIR && chatloom ask ...` works with no further set-up."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHATLOOM_HOME", str(tmp_path / "home"))
    assert run(["init", "quick"]) == 0
    monkeypatch.chdir(tmp_path / "quick")
    capsys.readouterr()
    code = run(["ask", "--model", "fake:echo", "--spec", "agents/assistant.yaml", "What is 17*23?"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "17*23" in captured.out


def test_init_writes_every_scaffold_file_with_the_bot_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run(["init", "bot", "--name", "ada"]) == 0
    ws = tmp_path / "bot"
    written = sorted(str(p.relative_to(ws)) for p in ws.rglob("*") if p.is_file())
    assert written == [
        ".gitignore",
        "agents/assistant.yaml",
        "chatloom.toml",
        "evals/smoke.jsonl",
        "memory/about.md",
        "prompts/ada.yaml",
        "tools/today.py",
    ]
    for relative in written:
        assert "{bot}" not in (ws / relative).read_text(), relative
    assert (ws / ".gitignore").read_text() == ".chatloom/\n__pycache__/\n"
    cases = [json.loads(line) for line in (ws / "evals" / "smoke.jsonl").read_text().splitlines()]
    assert cases[1]["input"] == "When does the ada team answer questions?"
