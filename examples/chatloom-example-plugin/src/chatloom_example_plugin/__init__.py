"""An example chatloom plugin: one tool and one prompt template, found through entry points."""

from importlib.resources import files

from langchain_core.tools import tool

HAIKU = files(__name__) / "haiku.yaml"  # a prompt plugin points at its YAML file


@tool
def word_count(text: str) -> str:
    """Count the words, lines and characters in a piece of text."""
    words, lines = len(text.split()), len(text.splitlines()) or 1
    return f"{words} words, {lines} lines, {len(text)} characters"


word_count.metadata = {"effect": "read"}
