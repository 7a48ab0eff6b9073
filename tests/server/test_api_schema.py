"""``/openapi.json`` follows the auth setting: with API keys it needs a key (it maps every route
and body), without keys it is served as before. ``/docs`` stays off. Issue 30, item 4."""

from __future__ import annotations

import httpx
from serverhelpers import KEY_A, live_server, scripted_catalog

from chatloom.server.app import create_app
from chatloom.server.config import ServerConfig


def test_the_schema_needs_a_key_when_keys_are_configured(server):
    missing = httpx.get(f"{server}/openapi.json")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    wrong = httpx.get(f"{server}/openapi.json", headers={"Authorization": "Bearer not-a-key-0123456789"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    ok = httpx.get(f"{server}/openapi.json", headers={"Authorization": f"Bearer {KEY_A}"})
    assert ok.status_code == 200 and "/v1/chat/completions" in ok.json()["paths"]
    for page in ("/docs", "/redoc"):
        assert httpx.get(f"{server}{page}", headers={"Authorization": f"Bearer {KEY_A}"}).status_code == 404


def test_a_keyless_server_serves_the_schema_without_a_key(checkpointer):
    with live_server(create_app(scripted_catalog(checkpointer), ServerConfig())) as url:
        reply = httpx.get(f"{url}/openapi.json")
    assert reply.status_code == 200 and "/v1/models" in reply.json()["paths"]
    assert "/openapi.json" not in reply.json()["paths"]  # the schema route itself is not an API route
