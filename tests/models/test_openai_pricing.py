"""Token prices and per-call cost."""

from __future__ import annotations

import socket
from decimal import Decimal

import pytest

from chatloom.models import pricing
from chatloom.models.pricing import cost_usd, price_for


@pytest.mark.parametrize(
    ("name", "alias"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("GPT-4.1-mini", "gpt-4.1-mini"),
        ("openai/gpt-4.1-nano", "gpt-4.1-nano"),
        ("gpt-4-0613", "gpt-4"),
        ("o3-mini-2025-01-31", "o3-mini"),
        # genai-prices prices the search preview's tokens as gpt-4o-mini's (the hand-kept table had
        # no price for it)
        ("gpt-4o-mini-search-preview", "gpt-4o-mini"),
    ],
)
def test_known_models(name, alias):
    assert price_for(alias) is not None
    assert price_for(name) == price_for(alias)


@pytest.mark.parametrize(
    ("name", "input_price", "output_price"),
    [
        ("gpt-4o-mini", "0.15", "0.6"),
        ("gpt-4o", "2.5", "10"),
        ("gpt-4.1", "2", "8"),
        ("o3-mini", "1.1", "4.4"),
        ("gpt-4", "30", "60"),
        ("gpt-3.5-turbo", "0.5", "1.5"),
    ],
)
def test_prices_per_million_tokens(name, input_price, output_price):
    price = price_for(name)
    assert (price.input_mtok, price.output_mtok) == (Decimal(input_price), Decimal(output_price))


@pytest.mark.parametrize("name", ["qwen2.5-coder", "ft:gpt-4o-mini:org::abc", "llama3", "", None])
def test_unknown_models_have_no_price(name):
    assert price_for(name) is None
    assert cost_usd(name, {"input_tokens": 10, "output_tokens": 10}) is None


def test_cost_with_cached_input():
    usage = {"input_tokens": 1000, "output_tokens": 100, "input_token_details": {"cache_read": 800}}
    # gpt-4o: 200 new input at $2.50, 800 cached at $1.25, 100 output at $10 per 1M
    assert cost_usd("gpt-4o", usage) == pytest.approx((200 * 2.5 + 800 * 1.25 + 100 * 10) / 1e6)


def test_cached_input_costs_the_input_price_when_no_cached_price_is_known():
    usage = {"input_tokens": 1000, "output_tokens": 100, "input_token_details": {"cache_read": 800}}
    assert cost_usd("gpt-4", usage) == pytest.approx((1000 * 30 + 100 * 60) / 1e6)


def test_no_usage_means_no_cost():
    assert cost_usd("gpt-4o", None) is None


def test_set_price(monkeypatch):
    monkeypatch.setattr(pricing, "PRICES", dict(pricing.PRICES))
    pricing.set_price("my-model", input=1.0, output=2.0)
    assert cost_usd("my-model", {"input_tokens": 1_000_000, "output_tokens": 500_000}) == pytest.approx(2.0)


def test_set_price_wins_over_the_bundled_data(monkeypatch):
    monkeypatch.setattr(pricing, "PRICES", dict(pricing.PRICES))
    pricing.set_price("gpt-4o", input=1.0, output=1.0, cached_input=0.5)
    usage = {"input_tokens": 1_000_000, "output_tokens": 0, "input_token_details": {"cache_read": 500_000}}
    assert cost_usd("GPT-4o", usage) == pytest.approx(0.75)
    assert cost_usd("gpt-4o-2024-08-06", usage) == pytest.approx(0.75)  # a dated snapshot too


def test_lookups_never_touch_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a price lookup opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert cost_usd("gpt-4.1-mini", {"input_tokens": 1000, "output_tokens": 1000}) == pytest.approx(0.002)
