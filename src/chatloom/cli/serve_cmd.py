"""``chatloom serve``: the workspace's agents over HTTP (OpenAI-compatible), optionally with a web chat page."""

from __future__ import annotations

from pathlib import Path

import click

from chatloom.errors import ConfigError, install_hint


@click.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on. Anything but loopback needs API keys."
)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option(
    "--workspace",
    "-w",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default=True,
    help="The bot workspace: each agents/*.yaml is served as a model, next to `default`.",
)
@click.option("--model", "-m", help="Use this model id for every agent (e.g. fake:echo for a dry run).")
@click.option("--ui", is_flag=True, help="Serve the web chat page at /.")
@click.option(
    "--cors-origin", "cors_origins", multiple=True, help="Let browser pages from this origin call the API (repeatable)."
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(1),
    help="Largest request body accepted (default 1000000; [serve] max_body_bytes).",
)
@click.option(
    "--turn-timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a turn may run (default 300; [serve] turn_timeout).",
)
def serve(
    host: str,
    port: int,
    workspace: Path,
    model: str | None,
    ui: bool,
    cors_origins: tuple[str, ...],
    max_body_bytes: int | None,
    turn_timeout: float | None,
) -> None:
    """Serve the workspace's agents over HTTP, in the OpenAI format.

    \b
    Endpoints (docs/serve.md has the details):
      POST /v1/chat/completions     OpenAI chat completions, streaming or not; the
                                    conversation is the X-Chatloom-Thread header
                                    (or metadata.thread_id, or user)
      GET  /v1/models               the agents, as models
      POST /v1/agents/NAME/turns    one turn as typed events (token, tool_call,
                                    tool_result, approval_required, answer)
      GET  /v1/threads, /v1/approvals  threads, and tool calls waiting for approval
      POST /v1/approvals/ID {"approve": true}
                                    resumes a paused turn (pauses survive restarts)
      GET  /health, /ready          liveness and readiness (no key needed)

    \b
    API keys: CHATLOOM_API_KEYS="acme=KEY1,globex=KEY2" or [serve] api_keys in
    chatloom.toml. Each key is a tenant with its own conversations and memory
    (ingest a tenant's documents with `chatloom ingest --tenant acme`). Clients send
    Authorization: Bearer KEY. Without keys, only 127.0.0.1 is served.

    \b
    Example:
      CHATLOOM_API_KEYS=me=$(python -c 'import secrets;print(secrets.token_urlsafe(24))') \\
        chatloom serve --ui --port 8000
    """
    try:
        import uvicorn

        from chatloom.server.app import create_app
    except ImportError as exc:
        raise ConfigError(
            f"chatloom serve needs {exc.name or 'fastapi/uvicorn'}, which is not installed", install_hint("server")
        ) from None
    from chatloom.server.agents import workspace_catalog
    from chatloom.server.config import load_server_config
    from chatloom.server.observe import configure_json_logs

    config = load_server_config(
        ui=ui or None, cors_origins=cors_origins or None, max_body_bytes=max_body_bytes, turn_timeout=turn_timeout
    )
    config.check_exposure(host)  # before anything loads
    if workspace != Path(".") and not (workspace / "agents").is_dir():
        raise ConfigError(
            f"{str(workspace)!r} has no agents/ folder", "pass a bot workspace (chatloom init DIR makes one)"
        )
    configure_json_logs()  # one JSON line per request and turn step on stderr (no contents, no keys)
    catalog = workspace_catalog(workspace, model=model)
    app = create_app(catalog, config)
    keys = f"{len(config.tenants)} tenant(s) with API keys" if config.tenants else "no API keys: local only"
    click.echo(f"chatloom serve: {', '.join(catalog.names())} on http://{host}:{port}/v1 ({keys})", err=True)
    if config.ui:
        click.echo(f"web chat: http://{host}:{port}/", err=True)
    # uvicorn's access log is off: the server logs each request itself, without query strings or headers.
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
