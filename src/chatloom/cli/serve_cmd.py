"""``chatloom serve``: the workspace's agents over HTTP (OpenAI-compatible), optionally with a web chat page."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Any

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
    "--allow-host",
    "allowed_hosts",
    multiple=True,
    help="Without API keys: also answer requests for this Host name (NAME or NAME:PORT; repeatable; "
    "[serve] allowed_hosts). Others than localhost/127.0.0.1/[::1] get a 421.",
)
@click.option(
    "--tenant",
    "local_tenant",
    help="Without API keys, the tenant whose threads and knowledge are served (default 'default', "
    "as chatloom ingest/ask/chat; [serve] local_tenant).",
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
    allowed_hosts: tuple[str, ...],
    local_tenant: str | None,
    max_body_bytes: int | None,
    turn_timeout: float | None,
) -> None:
    """Serve the workspace's agents over HTTP, in the OpenAI format.

    \b
    Endpoints (docs/serve.md has the details):
      POST /v1/chat/completions     OpenAI chat completions, streaming or not; the
                                    conversation is the thread named by the
                                    X-Chatloom-Thread header (or metadata.thread_id),
                                    else the messages sent (then nothing is stored)
      GET  /v1/models               the agents, as models
      POST /v1/agents/NAME/turns    one turn as typed events (token, tool_call,
                                    tool_result, approval_required, answer)
      GET  /v1/threads, /v1/approvals  threads, and tool calls waiting for approval
      POST /v1/approvals/ID {"approve": true}
                                    resumes a paused turn (pauses survive restarts)
      GET  /health, /ready          liveness (and knowledge bots with nothing
                                    ingested) and readiness (no key needed)

    \b
    API keys: CHATLOOM_API_KEYS="acme=KEY1,globex=KEY2" or [serve] api_keys in
    chatloom.toml. Each key is a tenant with its own conversations and memory
    (ingest a tenant's documents with `chatloom ingest --tenant acme`). Clients send
    Authorization: Bearer KEY. Without keys, only 127.0.0.1 is served, as the
    tenant `default`: what `chatloom ingest` (without --tenant) stored; requests
    must name localhost in Host (else 421) and writes from web pages need a
    local or --cors-origin Origin (else 403).

    \b
    Example:
      CHATLOOM_API_KEYS=me=$(python -c 'import secrets;print(secrets.token_urlsafe(24))') \\
        chatloom serve --ui --port 8000
    """
    try:
        import uvicorn  # noqa: F401 - imported here so a missing server extra is this one line

        from chatloom.server.app import create_app
    except ImportError as exc:
        raise ConfigError(
            f"chatloom serve needs {exc.name or 'fastapi/uvicorn'}, which is not installed", install_hint("server")
        ) from None
    from chatloom.server.agents import workspace_catalog
    from chatloom.server.config import load_server_config
    from chatloom.server.observe import configure_json_logs

    config = load_server_config(
        ui=ui or None,
        cors_origins=cors_origins or None,
        allowed_hosts=allowed_hosts or None,
        local_tenant=local_tenant,
        max_body_bytes=max_body_bytes,
        turn_timeout=turn_timeout,
    )
    config.check_exposure(host)  # before anything loads
    sock = listening_socket(host, port, "chatloom serve")  # a busy port fails here, before the banner
    port = sock.getsockname()[1]  # --port 0: the port the system picked
    if workspace != Path(".") and not (workspace / "agents").is_dir():
        raise ConfigError(
            f"{str(workspace)!r} has no agents/ folder", "pass a bot workspace (chatloom init DIR makes one)"
        )
    configure_json_logs()  # one JSON line per request and turn step on stderr (no contents, no keys)
    catalog = workspace_catalog(workspace, model=model)
    app = create_app(catalog, config)
    keys = (
        f"{len(config.tenants)} tenant(s) with API keys"
        if config.tenants
        else f"no API keys: local only, tenant {config.local_tenant!r}"
    )
    click.echo(f"chatloom serve: {', '.join(catalog.names())} on http://{host}:{port}/v1 ({keys})", err=True)
    for line in knowledge_warnings(catalog, config):
        click.echo(line, err=True)
    if config.ui:
        click.echo(f"web chat: http://{host}:{port}/", err=True)
    # uvicorn's access log is off: the server logs each request itself, without query strings or headers.
    run_uvicorn(app, sock, host, port, access_log=False)


def listening_socket(host: str, port: int, what: str) -> socket.socket:
    """A TCP socket bound to ``host:port``, for uvicorn to serve on.

    Bound here rather than by uvicorn so a busy port (or one this user may not bind) is one
    line and exit 2 before anything loads or prints, not uvicorn's error after the banner and
    exit 3. Reuse-address is set as uvicorn sets it, so a restart doesn't wait out TIME_WAIT.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"{what} can't listen on {host!r}: {exc.strerror or exc}", "check --host") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"{what} can't listen on {host}:{port}: the port is in use by another program",
                "stop that program, or pick another port with --port",
            ) from None
        raise ConfigError(
            f"{what} can't listen on {host}:{port}: {exc.strerror or exc}", "pick another --host or --port"
        ) from None
    return sock


def run_uvicorn(app: Any, sock: socket.socket, host: str, port: int, **options: Any) -> None:
    """Serve ``app`` with uvicorn on ``sock`` (from :func:`listening_socket`) until stopped."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", **options))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def knowledge_warnings(catalog: Any, config: Any) -> list[str]:
    """One line per knowledge model whose namespace is empty for a served tenant.

    Such a bot answers "not found" to everything, which looks like a broken model; the line
    says what to ingest. A keyless server also points at knowledge kept under the old keyless
    tenant ``local``, which stays readable with ``--tenant local``.
    """
    from chatloom.server.config import LEGACY_LOCAL_TENANT, LOCAL_TENANT

    empty: dict[tuple[str, str], list[str]] = {}
    try:
        for tenant in config.served_tenants():
            for found in catalog.empty_knowledge(tenant):
                empty.setdefault(found, []).append(tenant)
        legacy = None
        if empty and config.open and config.local_tenant != LEGACY_LOCAL_TENANT:
            legacy = set(catalog.empty_knowledge(LEGACY_LOCAL_TENANT))
    except Exception as exc:  # noqa: BLE001 - the server still starts; say why the check failed
        return [f"warning: can't check the knowledge store ({type(exc).__name__}: {exc})"]
    lines = []
    for (name, namespace), tenants in empty.items():
        more = ", ..." if len(tenants) > 5 else ""
        who = (
            f"tenant {tenants[0]!r}"
            if len(tenants) == 1
            else f"{len(tenants)} tenants ({', '.join(tenants[:5])}{more})"
        )
        flag = f" --tenant {tenants[0]}" if tenants[0] != LOCAL_TENANT else ""
        line = (
            f"warning: model {name!r} answers from namespace {namespace!r}, which is empty for {who}, "
            f"so it will find nothing; add documents with: chatloom ingest DOCS/ -n {namespace}{flag}"
        )
        if legacy is not None and (name, namespace) not in legacy:
            line += (
                f" (tenant {LEGACY_LOCAL_TENANT!r}, which chatloom serve used before, has documents there: "
                f"serve them with --tenant {LEGACY_LOCAL_TENANT})"
            )
        lines.append(line)
    return lines
