"""Token prices and per-call cost."""

from __future__ import annotations

import pytest

from chatloom.models import pricing
from chatloom.models.pricing import cost_usd, price_for


@pytest.mark.parametrize(("name", "alias"), [
    ("gpt-4o-mini", "gpt-4o-mini"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("GPT-4.1-mini", "gpt-4.1-mini"),
    ("openai/gpt-4.1-nano", "gpt-4.1-nano"),
    ("gpt-4-0613", "gpt-4"),
    ("o3-mini-2025-01-31", "o3-mini"),
])
def test_known_models(name, alias):
    assert price_for(name) is pricing.PRICES[alias]


@pytest.mark.parametrize("name", ["qwen2.5-coder", "gpt-4o-mini-search-preview",
                                  "ft:gpt-4o-mini:org::abc", "", None])
def test_unknown_models_have_no_price(name):
    assert price_for(name) is None
    assert cost_usd(name, {"input_tokens": 10, "output_tokens": 10}) is None


def test_cost_with_cached_input():
    usage = {"input_tokens": 1000, "output_tokens": 100, "input_token_details": {"cache_read": 800}}
    # gpt-4o: 200 new input at $2.50, 800 cached at $1.25, 100 output at $10 per 1M
    assert cost_usd("gpt-4o", usage) == pytest.approx((200 * 2.5 + 800 * 1.25 + 100 * 10) / 1e6)


def test_no_usage_means_no_cost():
    assert cost_usd("gpt-4o", None) is None


def test_set_price(monkeypatch):
    monkeypatch.setattr(pricing, "PRICES", dict(pricing.PRICES))
    pricing.set_price("my-model", input=1.0, output=2.0)
    assert cost_usd("my-model", {"input_tokens": 1_000_000, "output_tokens": 500_000}) == pytest.approx(2.0)
