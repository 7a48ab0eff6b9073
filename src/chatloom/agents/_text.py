"""Text helpers the graph needs before a prompt template or policy is bound."""

from __future__ import annotations

import re

_THINK = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL)


def split_reasoning(text: str) -> tuple[str, str]:
    """Split ``<think>...</think>`` blocks (even an unterminated one) out of ``text``."""
    reasoning = "\n".join(m.strip() for m in _THINK.findall(text))
    return _THINK.sub("", text).strip(), reasoning


def wrap_untrusted(text: str, source: str) -> str:
    """Delimit retrieved or tool text as data, so instructions inside it are not followed."""
    safe = text.replace("<data", "&lt;data").replace("</data", "&lt;/data")
    return f'<data source="{source}">\n{safe}\n</data>'
