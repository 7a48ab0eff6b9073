"""``chatloom prompts``, ``chatloom plugins`` and ``chatloom init``.

Only click is imported at module level; templates, plugins and rich load when a command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from chatloom.errors import ChatloomError, ConfigError


def _console() -> Any:
    import sys

    from rich.console import Console

    # piped output (tests, `| grep`) gets wide lines instead of 80-column wrapping
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _parse_vars(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--var {pair!r} is not KEY=VALUE", "write it like --var product='Acme Cloud'")
        out[key.strip()] = value
    return out


_workspace_option = click.option(
    "--workspace",
    "-w",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The bot workspace whose prompts/ and tools/ are searched.",
)


# -- chatloom prompts --------------------------------------------------------------------------------


@click.group("prompts")
def prompts() -> None:
    """List, show and render prompt templates.

    Lookup order: a path, the workspace's prompts/, plugins, then the built-ins.
    """


@prompts.command("list")
@_workspace_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_cmd(workspace: Path, as_json: bool) -> None:
    """Show every template: name, where it comes from, and what it is for."""
    from chatloom.prompts import list_prompts

    rows = list_prompts(workspace)
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in rows], indent=2))
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("name", "source", "description"):
        table.add_column(column)
    for r in rows:
        name = f"[dim]{r.name} (shadowed)[/]" if r.shadowed else r.name
        description = f"[red]error: {r.error}[/]" if r.error else r.description
        table.add_row(name, r.source, description)
    _console().print(table)


@prompts.command("show")
@click.argument("name")
@_workspace_option
def show_cmd(name: str, workspace: Path) -> None:
    """Show a template with `extends:` applied, as YAML."""
    from chatloom.prompts import load_prompt

    template = load_prompt(name, workspace)
    click.echo(_template_yaml(template))


@prompts.command("render")
@click.argument("name", required=False)
@click.option("--var", "variables", multiple=True, metavar="KEY=VALUE", help="Set a template variable (repeatable).")
@click.option("--tool", "tool_names", multiple=True, metavar="NAME", help="Bind a tool, as an agent would (repeatable).")
@click.option(
    "--spec",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Render an agent spec's prompt with its variables and tools (NAME, --var and --tool add to it).",
)
@_workspace_option
@click.option("--json", "as_json", is_flag=True, help="Print the messages as JSON.")
def render_cmd(
    name: str | None, variables: tuple[str, ...], tool_names: tuple[str, ...], spec: Path | None, workspace: Path, as_json: bool
) -> None:
    """Render a template into the messages the model receives."""
    from chatloom.prompts import load_prompt

    values: dict[str, Any] = {}
    names = list(tool_names)
    if spec is not None:
        from chatloom.agents.spec import load_spec

        agent = load_spec(spec)
        workspace = agent.workspace or workspace
        name = name or agent.prompt
        values.update(agent.variables)
        names = [*agent.tools, *(n for n in names if n not in agent.tools)]
    if name is None:
        raise ConfigError("no template to render", "give a template NAME or --spec agents/FILE.yaml")
    template = load_prompt(name, workspace)
    tools: list[Any] = []
    if names:
        from chatloom.tools.registry import resolve_tools

        tools = resolve_tools(names, workspace)
    values.update(_parse_vars(variables))
    messages = template.render(tools, values)
    if as_json:
        data = [
            {"type": m.type, "content": m.content, **({"tool_calls": m.tool_calls} if getattr(m, "tool_calls", None) else {})}
            for m in messages
        ]
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    for message in messages:
        click.echo(click.style(f"── {message.type} ", bold=True) + "─" * max(0, 60 - len(message.type)))
        for call in getattr(message, "tool_calls", None) or []:
            click.echo(f"→ {call['name']}({json.dumps(call['args'], ensure_ascii=False)})")
        if message.content:
            click.echo(str(message.content))


def _template_yaml(template: Any) -> str:
    import yaml

    from chatloom.prompts.template import DEFAULT_TOOLS_SECTION

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper: yaml.SafeDumper, value: str) -> Any:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str)
    data: dict[str, Any] = {
        "name": template.name,
        "description": template.description,
        "version": template.version,
        "reasoning": template.reasoning,
        "variables": dict(template.variables),
        "role": template.role.rstrip() + "\n",
        "policies": list(template.policies),
        "examples": [e.model_dump(exclude_defaults=True) for e in template.examples],
    }
    if template.tools_section != DEFAULT_TOOLS_SECTION:
        data["tools_section"] = template.tools_section
    header = f"# {template.name}: {template.source}, {template.path}\n"
    if template.extends:
        header += f"# extends: {' <- '.join(template.extends)}\n"
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return header + body.rstrip()


# -- chatloom plugins ---------------------------------------------------------------------------------


@click.group("plugins")
def plugins() -> None:
    """List installed plugins (entry points in chatloom.prompts/.tools/.models/.memory)."""


@plugins.command("list")
@click.option("--check", is_flag=True, help="Import every plugin and report the ones that fail.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_list_cmd(check: bool, as_json: bool) -> None:
    """Show every plugin entry point. Nothing is imported unless --check is given."""
    from chatloom import plugins as registry

    rows = []
    for p in registry.all_plugins():
        status = "not loaded"
        if check:
            error = registry.check(p)
            status = f"error: {error}" if error else "ok"
        rows.append({"group": p.group, "name": p.name, "package": f"{p.dist} {p.version}", "value": p.value, "status": status})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No plugins installed. A plugin is a package with chatloom.tools/.prompts/.models entry points;")
        click.echo("see examples/chatloom-example-plugin.")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("group", "name", "package", "value", *(("status",) if check else ())):
        table.add_column(column)
    for r in rows:
        status = r["status"]
        cells = [r["group"], r["name"], r["package"], r["value"]]
        if check:
            cells.append("[green]ok[/]" if status == "ok" else f"[red]{status}[/]")
        table.add_row(*cells)
    _console().print(table)


# -- chatloom init ------------------------------------------------------------------------------------


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="The bot's name. Default: the directory's name.")
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def init_cmd(directory: Path, name: str | None, force: bool) -> None:
    """Create a bot workspace: agents/, prompts/, tools/, memory/ and chatloom.toml.

    \b
    Then:  cd DIRECTORY && chatloom chat
    """
    bot = name or _slug(directory.resolve().name)
    written, kept = scaffold(directory, bot, force=force)
    for path in written:
        click.echo(f"  created  {path}")
    for path in kept:
        click.echo(f"  kept     {path} (exists; --force overwrites)")
    click.echo(
        f"\nYour bot {bot!r} is ready. Try:\n"
        f"  cd {directory}\n"
        f'  chatloom ask "What is 17*23?"     # runs agents/assistant.yaml\n'
        f"  chatloom chat\n"
        f"Edit prompts/{bot}.yaml to change its persona and tools/today.py to see how a tool is written.\n"
        f"Measure it with `chatloom eval` (evals/smoke.jsonl); `--save-baseline`, then `--check` in CI."
    )


def _slug(text: str) -> str:
    import re

    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "bot"
    return slug


def scaffold(directory: Path, bot: str, *, force: bool = False) -> tuple[list[Path], list[Path]]:
    """Write the workspace files; returns (written, kept) paths. Existing files are kept unless ``force``."""
    if directory.exists() and not directory.is_dir():
        raise ChatloomError(f"{str(directory)!r} exists and is not a directory", "choose another path")
    files = {
        "chatloom.toml": _CHATLOOM_TOML,
        # `chatloom chat` and `chatloom ask` use agents/assistant.yaml when no --spec is given
        "agents/assistant.yaml": _AGENT_YAML,
        f"prompts/{bot}.yaml": _PROMPT_YAML,
        "tools/today.py": _TOOL_PY,
        "memory/about.md": _MEMORY_MD,
        # `chatloom eval` runs every evals/*.jsonl; --save-baseline, then --check in CI
        "evals/smoke.jsonl": _EVALS_JSONL,
        ".gitignore": ".chatloom/\n__pycache__/\n",
    }
    written: list[Path] = []
    kept: list[Path] = []
    for relative, text in files.items():
        path = directory / relative
        if path.exists() and not force:
            kept.append(path)
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text.replace("{bot}", bot), encoding="utf-8")
        except OSError as exc:
            raise ChatloomError(f"can't write {str(path)!r}: {exc.strerror or exc}", "check the directory's permissions") from None
        written.append(path)
    return written, kept


_CHATLOOM_TOML = """\
# Settings for this bot. CHATLOOM_* environment variables and CLI flags override them.
[chatloom]
# The chat model: a local catalog model (`chatloom models list`), or e.g. "openai:gpt-4o-mini".
# model = "local:qwen2.5-coder-0.5b"
# An OpenAI-compatible server (vLLM, Ollama, llama.cpp server) for openai: models:
# openai_base_url = "http://127.0.0.1:8000/v1"
"""

_AGENT_YAML = """\
# The agent spec: which prompt, tools and memory the bot uses.
# `chatloom chat` and `chatloom ask` in this folder run it (or pass --spec agents/assistant.yaml).
name: {bot}
description: My chatloom bot.
model: null              # null: the configured default (chatloom.toml or CHATLOOM_MODEL)
prompt: {bot}            # prompts/{bot}.yaml
variables:
  bot_name: {bot}
tools:
  - calculator           # built-in
  - today                # tools/today.py
memory:
  # Knowledge memory: run `chatloom ingest memory/ -n {bot}`, then set enabled: true.
  enabled: false
  namespace: {bot}
  k: 4
max_steps: 8
tool_policy:
  calculator: allow
  today: allow
"""

_PROMPT_YAML = """\
# The bot's prompt. It extends the built-in `assistant` template (its policies and few-shot
# examples) and sets its own role. `chatloom prompts show assistant` prints the base;
# `chatloom prompts render {bot} -w .` shows what the model receives.
name: {bot}
description: The persona of {bot}.
extends: assistant
reasoning: direct        # or cot: think in <think>...</think>, hidden from the user
variables:
  bot_name: {bot}
role: |
  You are {{ bot_name }}, a friendly assistant.
  Answer briefly and plainly. Use your tools for arithmetic and for today's date.
policies:
  - Use the calculator for arithmetic; never guess a number.
  - Use the today tool whenever the answer depends on the current date.
  - If you don't know, say so.
examples:
  - user: What day of the week is it?
    tool_calls:
      - name: today
        args: {}
        result: "2026-01-05 (Monday)"
    assistant: It's Monday, 5 January 2026.
  - user: What is 12% of 250?
    tool_calls:
      - name: calculator
        args: {expression: "12% of 250"}
        result: "30"
    assistant: 12% of 250 is 30.
"""

_TOOL_PY = '''\
"""A workspace tool. Any module-level @tool in tools/*.py can be named in an agent spec.

A typed function with a docstring is a whole tool: the docstring is what the model reads.
"""

import datetime

from langchain_core.tools import tool


@tool
def today() -> str:
    """Return today's date and weekday, e.g. "2026-01-05 (Monday)"."""
    now = datetime.date.today()
    return f"{now.isoformat()} ({now.strftime('%A')})"


today.metadata = {"effect": "read"}  # read-only: the tool policy allows it without asking
'''

_MEMORY_MD = """\
# About {bot}

{bot} is a chatbot built with chatloom. This file is a sample knowledge document: put your own
documents (Markdown, text, PDF, HTML) in memory/ and run `chatloom ingest memory/ -n {bot}` to make them
searchable. With `memory: {enabled: true}` in the agent spec, the bot recalls the passages most
relevant to each question and cites them as [1], [2].

## How to customise {bot}

- The persona and rules live in prompts/{bot}.yaml.
- Tools live in tools/*.py; list a tool's name under `tools:` in agents/assistant.yaml to enable it.
- The model is set in chatloom.toml (`model = "openai:gpt-4o-mini"`, for example).

## Support hours

The {bot} team answers questions on weekdays from 9:00 to 17:00.
"""

# One case a line: {"input", "expected"?, "documents"?, "unanswerable"?}; see docs/eval.md.
_EVALS_JSONL = """\
{"id": "arithmetic", "input": "What is 17*23?", "expected": "391"}
{"id": "support-hours", "input": "When does the {bot} team answer questions?", "expected": "9:00", "documents": ["../memory/about.md"], "gold_documents": ["about.md"], "scorers": ["contains", "cited_gold", "supported"]}
{"id": "not-in-the-docs", "input": "What is the street address of the {bot} office?", "unanswerable": true, "documents": ["../memory/about.md"]}
"""
