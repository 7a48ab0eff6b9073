"""A keyless server is local in fact: other Host names get a 421 (DNS rebinding), cross-site
pages can't change anything (403), and the deployer can list more names. Issue 30, item 4."""

from __future__ import annotations

import httpx
import pytest
from serverhelpers import KEY_A, config, echo_workspace, live_server, scripted_catalog, serve_process

from chatloom.server.app import create_app
from chatloom.server.config import ServerConfig

ASK = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def keyless(checkpointer):
    app = create_app(scripted_catalog(checkpointer), ServerConfig(allowed_hosts=("chat.internal",)))
    with live_server(app) as url:
        yield url, int(url.rsplit(":", 1)[1])


def test_a_keyless_server_answers_only_hosts_naming_this_machine(keyless):
    url, port = keyless
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "chat.internal", "chat.internal:443"):
        assert httpx.get(f"{url}/v1/models", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", f"evil.example:{port}", f"localhost:{port + 1}", "127.0.0.1", "", "a:b:c"):
        reply = httpx.get(f"{url}/v1/models", headers={"Host": host})
        assert reply.status_code == 421, host
        error = reply.json()["error"]
        assert error["code"] == "host_not_allowed" and "--allow-host" in error["message"]
    # A rebinding page can't post a turn either: the Host is checked before anything runs.
    posted = httpx.post(f"{url}/v1/chat/completions", json=ASK, headers={"Host": f"evil.example:{port}"})
    assert posted.status_code == 421


def test_a_keyless_server_refuses_writes_from_cross_site_pages(keyless):
    url, port = keyless
    for origin in ("https://evil.example", "null", f"http://localhost:{port + 1}", "file://"):
        reply = httpx.post(f"{url}/v1/chat/completions", json=ASK, headers={"Origin": origin})
        assert reply.status_code == 403 and reply.json()["error"]["code"] == "origin_not_allowed", origin
        assert httpx.delete(f"{url}/v1/threads/t", headers={"Origin": origin}).status_code == 403
    # Reads, same-origin pages (the web chat page) and clients that send no Origin are served.
    assert httpx.get(f"{url}/v1/models", headers={"Origin": "https://evil.example"}).status_code == 200
    for headers in ({"Origin": f"http://127.0.0.1:{port}"}, {"Origin": f"http://localhost:{port}"}, {}):
        assert httpx.post(f"{url}/v1/chat/completions", json=ASK, headers=headers).status_code == 200, headers


def test_a_server_with_keys_keeps_serving_any_host(checkpointer):
    # A key is the protection there (a rebinding page has none); proxies and real names work.
    with live_server(create_app(scripted_catalog(checkpointer), config())) as url:
        headers = {"Authorization": f"Bearer {KEY_A}", "Host": "chat.example.com", "Origin": "https://x.example"}
        assert httpx.post(f"{url}/v1/chat/completions", json=ASK, headers=headers).status_code == 200


def test_allowed_hosts_is_checked_and_read_from_the_command_line(tmp_path):
    from chatloom.errors import ConfigError

    with pytest.raises(ConfigError, match="is not a host name"):
        ServerConfig(allowed_hosts=("http://x/",))
    ws = echo_workspace(tmp_path / "ws")
    with serve_process(ws, tmp_path, env={"CHATLOOM_API_KEYS": ""}, args=("--allow-host", "bot.lan:8080")) as (url, _):
        assert httpx.get(f"{url}/v1/models", headers={"Host": "bot.lan:8080"}).status_code == 200
        assert httpx.get(f"{url}/v1/models", headers={"Host": "bot.lan:8081"}).status_code == 421
