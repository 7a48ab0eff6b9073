"""`chatloom serve` as a real process: keys from the environment, the openai client, clear refusals."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import openai
import pytest
from serverhelpers import REPO, echo_workspace, serve_process

KEY = "cli-key-abcdefghijklmnop"


def run_cli(*args: str, env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chatloom.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), **env},
        cwd=cwd,
    )


def test_serve_with_keys_from_the_environment(tmp_path):
    ws = echo_workspace(tmp_path / "ws")
    with serve_process(ws, tmp_path, env={"CHATLOOM_API_KEYS": f"team={KEY}"}) as (url, log):
        c = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=30)
        assert [m.id for m in c.models.list()] == ["default", "echo"]
        r = c.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "over the wire"}],
            extra_headers={"X-Chatloom-Thread": "w"},
        )
        assert r.choices[0].message.content == "You said: over the wire"
        text = "".join(
            ch.choices[0].delta.content or ""
            for ch in c.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": "streamed"}], stream=True
            )
            if ch.choices
        )
        assert text == "You said: streamed"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="wrong-key-0000000000000", max_retries=0).models.list()
        assert httpx.get(f"{url}/ready").json()["status"] == "ready"
    logged = log.read_text()
    assert KEY not in logged and "over the wire" not in logged
    assert '"event": "turn.end"' in logged and "1 tenant(s) with API keys" in logged


def test_serve_refuses_to_listen_beyond_loopback_without_keys(tmp_path):
    ws = echo_workspace(tmp_path / "ws")
    out = run_cli(
        "serve",
        "--host",
        "0.0.0.0",
        "--model",
        "fake:echo",
        env={"CHATLOOM_HOME": str(tmp_path), "CHATLOOM_CONFIG": str(tmp_path / "none.toml"), "CHATLOOM_API_KEYS": ""},
        cwd=ws,
    )
    assert out.returncode == 2 and "refusing to serve on '0.0.0.0' without API keys" in out.stderr
    assert "Traceback" not in out.stderr


def test_serve_needs_a_workspace_with_agents(tmp_path):
    env = {"CHATLOOM_HOME": str(tmp_path), "CHATLOOM_CONFIG": str(tmp_path / "none.toml"), "CHATLOOM_API_KEYS": ""}
    out = run_cli("serve", "--workspace", str(tmp_path / "nowhere"), "--model", "fake:echo", env=env, cwd=tmp_path)
    assert out.returncode == 2 and "has no agents/ folder" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("team=short", "shorter than 16 characters"),
        ("teamwithoutkey", "without '='"),
        ("bad/name=" + "k" * 20, "tenant name 'bad/name' is not allowed"),
        (f"a={KEY},b={KEY}", "the same API key is given to two tenants"),
        ("a=env:NO_SUCH_VAR_HERE", "$NO_SUCH_VAR_HERE, which is not set"),
    ],
)
def test_bad_api_key_config_is_a_clear_error(tmp_path, keys, message):
    out = run_cli(
        "serve",
        "--model",
        "fake:echo",
        env={"CHATLOOM_HOME": str(tmp_path), "CHATLOOM_CONFIG": str(tmp_path / "none.toml"), "CHATLOOM_API_KEYS": keys},
        cwd=tmp_path,
    )
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert "k" * 20 not in out.stderr and KEY not in out.stderr  # an error never echoes a key


def test_keys_and_limits_from_chatloom_toml(tmp_path, monkeypatch):
    from chatloom.server.config import load_server_config

    toml = tmp_path / "chatloom.toml"
    toml.write_text(
        '[chatloom]\nmodel = "fake:echo"\n[serve]\napi_keys = {acme = "env:ACME_KEY", globex = ["' + "g" * 20 + '"]}\n'
        'max_body_bytes = 5000\ncors_origins = ["https://intranet.example.com"]\n',
        encoding="utf-8",
    )
    config = load_server_config(toml, environ={"ACME_KEY": "a" * 20})
    assert [t.name for t in config.tenants] == ["acme", "globex"]
    assert config.tenant_for("a" * 20).name == "acme" and config.tenant_for("g" * 20).name == "globex"
    assert config.max_body_bytes == 5000 and config.cors_origins == ("https://intranet.example.com",)
    assert "a" * 20 not in repr(config)
    toml.write_text("[serve]\nmax_body = 5\n", encoding="utf-8")
    from chatloom.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown setting 'max_body'"):
        load_server_config(toml, environ={})


def test_cors_lets_the_configured_origin_only(checkpointer):
    from serverhelpers import config, live_server, scripted_catalog

    from chatloom.server.app import create_app

    app = create_app(scripted_catalog(checkpointer), config(cors_origins=("https://intranet.example.com",)))
    with live_server(app) as url:
        pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
        ok = httpx.options(f"{url}/v1/chat/completions", headers={"Origin": "https://intranet.example.com", **pre})
        bad = httpx.options(f"{url}/v1/chat/completions", headers={"Origin": "https://evil.example.com", **pre})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://intranet.example.com"
    assert "access-control-allow-origin" not in bad.headers


@pytest.mark.parametrize("command", [("serve", "--model", "fake:echo"), ("mcp", "serve", "--transport", "http")])
def test_a_busy_port_is_one_line_and_exit_2(tmp_path, command):
    import socket

    ws = echo_workspace(tmp_path / "ws")
    env = {"CHATLOOM_HOME": str(tmp_path), "CHATLOOM_CONFIG": str(tmp_path / "none.toml"), "CHATLOOM_API_KEYS": ""}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_cli(*command, "--port", str(port), env=env, cwd=ws)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr
    assert f"can't listen on 127.0.0.1:{port}: the port is in use" in lines[0] and "--port" in out.stderr
    assert "Traceback" not in out.stderr and "ERROR" not in out.stderr
    assert not any(line.startswith(("chatloom serve:", "serving MCP")) for line in lines)  # no banner first
