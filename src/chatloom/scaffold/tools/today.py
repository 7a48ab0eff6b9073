"""A workspace tool. Any module-level @tool in tools/*.py can be named in an agent spec.

A typed function with a docstring is a whole tool: the docstring is what the model reads.
"""

import datetime

from langchain_core.tools import tool


@tool
def today() -> str:
    """Return today's date and weekday, e.g. "2026-01-05 (Monday)"."""
    now = datetime.date.today()
    return f"{now.isoformat()} ({now.strftime('%A')})"


today.metadata = {"effect": "read"}  # read-only: the tool policy allows it without asking
