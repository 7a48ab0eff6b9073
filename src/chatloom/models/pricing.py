"""Token prices for OpenAI models, to put a cost on every reply where it is known.

The prices come from `genai-prices <https://github.com/pydantic/genai-prices>`_ (the price data
pydantic-ai uses), which ships its data inside the package: a lookup never touches the network.
Dated snapshots (``gpt-4o-mini-2024-07-18``) cost what the library says they cost, usually their
alias's price. A model it does not know simply has no cost (``None``), it is never guessed.
Add or correct one with :func:`set_price`; a price set there wins over the bundled data.

>>> round(cost_usd("gpt-4o-mini-2024-07-18", {"input_tokens": 1000, "output_tokens": 500}), 6)
0.00045
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from genai_prices.types import ModelPrice, Usage

__all__ = ["PRICES", "ModelPrice", "cost_usd", "price_for", "set_price"]

# Prices set with set_price, by lower-cased model name. They win over the bundled data.
PRICES: dict[str, ModelPrice] = {}

# chatloom prices OpenAI's API; models served elsewhere under other names get no price.
_PROVIDER = "openai"
# A dated snapshot of a model given a price with set_price costs that price.
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


def set_price(model: str, input: float, output: float, cached_input: float | None = None) -> None:
    """Set (or correct) the USD-per-1M-token price of ``model``.

    ``cached_input`` is the price of cache-read input tokens; they cost ``input`` when it is None.
    """
    PRICES[model.strip().lower()] = ModelPrice(
        input_mtok=Decimal(str(input)),
        output_mtok=Decimal(str(output)),
        cache_read_mtok=None if cached_input is None else Decimal(str(cached_input)),
    )


def price_for(model: str | None) -> ModelPrice | None:
    """The price of ``model`` today, ignoring an ``openai/`` style prefix; None when unknown."""
    if not model:
        return None
    name = model.strip().lower().rsplit("/", 1)[-1]
    for key in (name, _DATE_SUFFIX.sub("", name)):
        if key in PRICES:
            return PRICES[key]
    return _bundled_price(name)


def _bundled_price(name: str) -> ModelPrice | None:
    # Imported on first use: the price data is a 1.6 MB module that a chat on a local model
    # never needs, and importing it costs about a quarter of a second.
    from genai_prices.data_snapshot import get_snapshot

    try:
        _, info = get_snapshot().find_provider_model(name, None, _PROVIDER, None)
    except LookupError:
        return None
    return info.get_prices(datetime.now(tz=UTC))


def cost_usd(model: str | None, usage: Mapping[str, Any] | None) -> float | None:
    """USD cost of one call from langchain ``usage_metadata``, or None if the price is unknown.

    Cache-read input tokens (``input_token_details.cache_read``) cost the cached price.
    """
    price = price_for(model)
    if price is None or not usage:
        return None
    input_tokens = int(usage.get("input_tokens") or 0)
    details = usage.get("input_token_details") or {}
    calls = Usage(
        input_tokens=input_tokens,
        output_tokens=int(usage.get("output_tokens") or 0),
        cache_read_tokens=min(int(details.get("cache_read") or 0), input_tokens),
    )
    return float(price.calc_price(calls)["total_price"])
