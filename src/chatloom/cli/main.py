"""The ``chatloom`` console script.

Sub-commands live in their own modules and are imported only when run, so ``chatloom --help``
and the chat prompt appear fast. The one place that turns a :class:`ChatloomError` into a
one-line message and an exit code is :func:`run`.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from chatloom.errors import ChatloomError, TurnStopped

# name -> ("module:attribute", one-line help shown by --help without importing the module)
_COMMANDS: dict[str, tuple[str, str]] = {
    "chat": ("chatloom.cli.chat:chat", "Chat in the terminal (the default command)."),
    "ask": ("chatloom.cli.chat:ask", "Ask one question and print the answer."),
    "models": ("chatloom.cli.models_cmd:models", "List and install local models."),
    "prompts": ("chatloom.cli.prompts_cmd:prompts", "List, show and render prompt templates."),
    "plugins": ("chatloom.cli.plugins_cmd:plugins", "List installed plugins."),
    "init": ("chatloom.cli.init_cmd:init_cmd", "Create a new bot workspace."),
    "ingest": ("chatloom.cli.memory_cmd:ingest", "Add documents to the knowledge memory."),
    "memory": ("chatloom.cli.memory_cmd:memory", "List, search and forget memory."),
    "mcp": ("chatloom.cli.mcp_cmd:mcp", "List and check MCP servers; serve an agent over MCP."),
    "eval": ("chatloom.cli.eval_cmd:eval_cmd", "Measure agents on datasets, side by side; gate regressions."),
    "serve": ("chatloom.cli.serve_cmd:serve", "Serve the agents over HTTP (OpenAI-compatible API, optional web chat)."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        target, _ = _COMMANDS[name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            return None  # a command whose module is not part of this build
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in _COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chatloom")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """chatloom: an agentic chatbot that runs on a local model or OpenAI.

    With no command it starts `chatloom chat`. Settings come from chatloom.toml and
    CHATLOOM_* variables (e.g. CHATLOOM_MODEL=openai:gpt-4o-mini, CHATLOOM_HOME=DIR).
    """
    if ctx.invoked_subcommand is None:
        from chatloom.cli.chat import chat

        ctx.invoke(chat)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; errors become one line on stderr, status 2."""
    try:
        # A command's ctx.exit(n) (e.g. `eval --check` finding a regression) comes back as n.
        code = cli.main(args=argv, prog_name="chatloom", standalone_mode=False)
    except TurnStopped:  # Ctrl-C during an answer (see ctrl_c_stops_the_turn)
        click.echo("interrupted", err=True)
        return 130
    except ChatloomError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug, not a user error: one line, the traceback on request
        if os.environ.get("CHATLOOM_DEBUG"):
            raise
        click.echo(
            f"error: internal error: {type(exc).__name__}: {exc} — rerun with CHATLOOM_DEBUG=1 for the traceback, and please report it",
            err=True,
        )
        return 1
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


def main() -> None:  # pragma: no cover - the console-script shim
    sys.exit(run())


if __name__ == "__main__":  # pragma: no cover
    main()
