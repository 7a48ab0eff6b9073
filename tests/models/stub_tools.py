"""Stub tools for the model tests: only their names and schemas matter, never their results."""

from langchain_core.tools import tool


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression."""
    return "391"


calculator.metadata = {"effect": "read"}  # undeclared tools need approval, like the real ones


@tool
def search(query: str, k: int = 3) -> str:
    """Search the knowledge base."""
    return "nothing"


search.metadata = {"effect": "read"}
