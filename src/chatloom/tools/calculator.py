"""The calculator tool: :mod:`chatloom.arithmetic` for the model to call.

>>> calculator.invoke({"expression": "17*23"})
'391'
"""

from __future__ import annotations

from langchain_core.tools import tool

from chatloom.arithmetic import CalculatorError, evaluate

__all__ = ["calculator"]


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly, e.g. "12*(3+4)/7", "15% of 80", "2^10",
    "sqrt(2)", "round(10/3, 2)". Also: // % log ln exp sin cos tan abs floor ceil min max pi."""
    try:
        return evaluate(expression)
    except CalculatorError as exc:
        return f"error: {exc}"


calculator.metadata = {"effect": "read", "trusted_output": True}
