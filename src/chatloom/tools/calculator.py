"""The calculator tool: exact arithmetic through an AST whitelist, never ``eval``."""

from __future__ import annotations

import ast
import operator
from fractions import Fraction

from langchain_core.tools import tool

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_MAX_EXPONENT = 10_000


def evaluate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly and return the result as text.

    >>> evaluate("17*23")
    '391'
    >>> evaluate("1/3 + 1/6")
    '1/2'
    """
    tree = ast.parse(expression.strip(), mode="eval")
    result = _eval(tree.body)
    if isinstance(result, Fraction) and result.denominator == 1:
        return str(result.numerator)
    return str(result)


def _eval(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _eval(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (right.denominator != 1 or abs(right) > _MAX_EXPONENT):
            raise ValueError(f"exponent {right} is not a whole number up to {_MAX_EXPONENT}")
        return Fraction(_BINARY[type(node.op)](left, right))
    raise ValueError(f"unsupported expression: {ast.unparse(node)!r}")


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly, e.g. "17*23" or "(3+4)/7"."""
    try:
        return evaluate(expression)
    except ZeroDivisionError:
        return "error: division by zero"
    except (SyntaxError, ValueError) as exc:
        return f"error: {exc}"


calculator.metadata = {"effect": "read"}
