"""Token prices for common OpenAI models, to put a cost on every reply where it is known.

Prices are USD per 1M tokens, from OpenAI's public price list (standard tier). They change;
a model missing here simply has no cost (``None``), it is never guessed. Add or correct one
with :func:`set_price`.

>>> round(cost_usd("gpt-4o-mini-2024-07-18", {"input_tokens": 1000, "output_tokens": 500}), 6)
0.00045
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Price", "PRICES", "price_for", "cost_usd", "set_price"]


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens. ``cached_input`` defaults to the input price when unknown."""

    input: float
    output: float
    cached_input: float | None = None


PRICES: dict[str, Price] = {
    "gpt-5": Price(1.25, 10.00, 0.125),
    "gpt-5-mini": Price(0.25, 2.00, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "o1": Price(15.00, 60.00, 7.50),
    "o1-mini": Price(1.10, 4.40, 0.55),
    "o3": Price(2.00, 8.00, 0.50),
    "o3-mini": Price(1.10, 4.40, 0.55),
    "o4-mini": Price(1.10, 4.40, 0.275),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-4": Price(30.00, 60.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
}

_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


def set_price(model: str, input: float, output: float, cached_input: float | None = None) -> None:
    """Set (or correct) the USD-per-1M-token price of ``model``."""
    PRICES[model] = Price(input, output, cached_input)


def price_for(model: str | None) -> Price | None:
    """The price of ``model``, ignoring date suffixes (``gpt-4o-2024-08-06``) and ``openai/``."""
    if not model:
        return None
    name = model.strip().lower().rsplit("/", 1)[-1]
    if name in PRICES:
        return PRICES[name]
    # Dated snapshots cost what their alias costs; other variants (search, audio, fine-tunes)
    # are priced differently, so they get no price rather than a wrong one.
    return PRICES.get(_DATE_SUFFIX.sub("", name))


def cost_usd(model: str | None, usage: Mapping[str, Any] | None) -> float | None:
    """USD cost of one call from langchain ``usage_metadata``, or None if the price is unknown."""
    price = price_for(model)
    if price is None or not usage:
        return None
    input_tokens = int(usage.get("input_tokens") or 0)
    output_tokens = int(usage.get("output_tokens") or 0)
    details = usage.get("input_token_details") or {}
    cached = min(int(details.get("cache_read") or 0), input_tokens)
    cached_price = price.cached_input if price.cached_input is not None else price.input
    total = ((input_tokens - cached) * price.input + cached * cached_price
             + output_tokens * price.output)
    return total / 1_000_000
