"""Exact arithmetic through an AST whitelist, never ``eval``: the calculator tool's engine, and
the reading of equations a model writes (the inline calculator, the grounding check).

Numbers are kept as exact fractions (``0.1 + 0.2`` is exactly ``0.3``) until a function that has
no exact answer (``sqrt(2)``, ``sin(1)``, ``log(3)``) makes the value a float. Every step is
bounded: the input length, the nesting depth, the size of every intermediate number (checked
*before* a power is computed), the length of the printed result and the wall time.

>>> evaluate("17*23")
'391'
>>> evaluate("1/3 + 1/6")
'0.5'
>>> evaluate("15% of 80")
'12'
>>> evaluate("sqrt(2)")
'1.41421356237'
"""

from __future__ import annotations

import ast
import math
import operator
import re
import time
import warnings
from collections.abc import Callable
from decimal import Context, Decimal
from fractions import Fraction

Number = Fraction | float

MAX_INPUT_CHARS = 2_000
"""Longer expressions are refused before parsing."""
MAX_DEPTH = 64
"""Deeper expression trees are refused (keeps recursion far from Python's limit)."""
MAX_BITS = 10_000
"""No exact intermediate value may have a numerator or denominator above this many bits
(about 3,000 decimal digits)."""
MAX_EXPONENT = 10_000
"""The largest power (in absolute value) the calculator will raise anything to."""
MAX_FACTORIAL = 1_000
MAX_RESULT_CHARS = 120
"""Exact results longer than this are shown in scientific notation instead."""
TIME_LIMIT_S = 1.0
"""Wall-time budget for one evaluation."""
SIGNIFICANT_DIGITS = 12
"""Digits shown for results that are not exact (floats, repeating decimals)."""


class CalculatorError(ValueError):
    """The expression is not something the calculator will evaluate; the message says why."""


# --------------------------------------------------------------------------------------------
# Pre-processing: the notations people and models actually write.

_UNICODE = str.maketrans({"×": "*", "·": "*", "÷": "/", "−": "-", "–": "-", "√": "sqrt", "π": "pi"})
# "15% of 80" -> "15/100*80"
_PERCENT_OF = re.compile(r"(\d[\d_]*(?:\.\d*)?|\.\d+|\))\s*%\s*of\b", re.IGNORECASE)
# A trailing "%" (end, ")", ",", or an operator next) is a percent sign, not modulo:
# "80*15%" -> "80*(15/100)"; "10 % 3" stays modulo.
_PERCENT = re.compile(r"(\d[\d_]*(?:\.\d*)?|\.\d+)\s*%(?=\s*(?:$|[)\],+\-*/]))")
_THOUSANDS = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d])")


_ROOT_SIGN = re.compile(r"√\s*(\d[\d_]*(?:\.\d*)?|\.\d+)")


def _preprocess(expression: str) -> str:
    text = _ROOT_SIGN.sub(r"sqrt(\1)", expression.strip()).translate(_UNICODE)
    if text.endswith("="):  # "17*23 =" is a common way to ask
        text = text[:-1]
    # Thousands separators ("80,000") only where no function call could use commas.
    if "(" not in text or not re.search(r"[A-Za-z_]\s*\(", text):
        text = _THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), text)
    text = _PERCENT_OF.sub(r"\1/100*", text)
    text = _PERCENT.sub(r"(\1/100)", text)
    # "^" means power to people; Python's XOR is never what a calculator user wants.
    return text.replace("^", "**")


# --------------------------------------------------------------------------------------------
# Evaluation.


def compute(expression: str, *, time_limit: float = TIME_LIMIT_S) -> Number:
    """Evaluate ``expression`` and return the value: a ``Fraction`` when exact, else a float.

    Raises :class:`CalculatorError` for anything it will not or cannot evaluate.

    >>> compute("0.1 + 0.2")
    Fraction(3, 10)
    """
    if not isinstance(expression, str):
        raise CalculatorError(f"expected an expression as text, got {type(expression).__name__}")
    if len(expression) > MAX_INPUT_CHARS:
        raise CalculatorError(f"expression is {len(expression)} characters; the limit is {MAX_INPUT_CHARS}")
    source = _preprocess(expression)
    if not source:
        raise CalculatorError("empty expression")
    try:
        with warnings.catch_warnings():  # "1j2" etc. warn before failing; the error says it all
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(f"cannot parse {_short(expression)}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        raise CalculatorError(f"cannot parse {_short(expression)}: {type(exc).__name__}") from None
    evaluator = _Evaluator(source, time.monotonic() + time_limit)
    try:
        value = evaluator.eval(tree.body, 0)
    except CalculatorError:
        raise
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except OverflowError:
        raise CalculatorError("result is too large") from None
    except (ValueError, ArithmeticError) as exc:  # math domain errors and the like
        raise CalculatorError(f"{exc}") from None
    except RecursionError:
        raise CalculatorError("expression is nested too deeply") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("result is not a finite number")
    return value


def _short(text: str) -> str:
    return repr(text) if len(text) <= 60 else repr(text[:57] + "...")


def evaluate(expression: str) -> str:
    """Evaluate an arithmetic expression exactly and return the result as text.

    Whole numbers and terminating decimals print exactly; repeating decimals print rounded with
    the exact fraction after them; inexact results print to 12 significant digits.

    >>> evaluate("(3+4)/7")
    '1'
    >>> evaluate("2/3")
    '0.666666666667 (exactly 2/3)'
    >>> evaluate("round(2.675, 2)")
    '2.68'
    """
    return format_number(compute(expression))


def format_number(value: Number) -> str:
    """Render a calculator value as short, unambiguous text (see :func:`evaluate`)."""
    if isinstance(value, float):
        return "0" if value == 0 else _tidy_exponent(format(value, f".{SIGNIFICANT_DIGITS}g"))
    # ~3.3 bits per digit: only build strings that can fit, so no huge str() is ever made
    fits = _bits(value) <= MAX_RESULT_CHARS * 3
    exact = _exact_decimal(value) if fits else None
    if exact is not None and len(exact) <= MAX_RESULT_CHARS:
        return exact
    approx = _decimal_approx(value)
    if Fraction(approx) == value:  # e.g. 10**3000: exact, just long
        return approx
    if _terminates(value):
        return f"{approx} (rounded)"
    fraction = f"{value.numerator}/{value.denominator}" if fits else ""
    if fraction and len(fraction) <= MAX_RESULT_CHARS:
        return f"{approx} (exactly {fraction})"
    return f"{approx} (rounded)"


def _terminates(value: Fraction) -> bool:
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    return den == 1


def _tidy_exponent(text: str) -> str:
    # "1.00000000000e+3000" -> "1e+3000"
    mantissa, sep, exponent = text.partition("e")
    if sep and "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}{sep}{exponent}"


def _exact_decimal(value: Fraction) -> str | None:
    """The exact decimal expansion if the fraction terminates, else None."""
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den != 1:
        return None
    places = max(twos, fives)
    if places == 0:
        return str(value.numerator)
    if places > MAX_RESULT_CHARS:
        return None
    scaled = abs(value.numerator) * 10**places // value.denominator
    digits = str(scaled).rjust(places + 1, "0")
    text = f"{digits[:-places]}.{digits[-places:]}".rstrip("0").rstrip(".")
    return f"-{text}" if value < 0 else text


def _decimal_approx(value: Fraction) -> str:
    ctx = Context(prec=SIGNIFICANT_DIGITS)
    dec = ctx.divide(Decimal(value.numerator), Decimal(value.denominator))
    if abs(dec.adjusted()) < SIGNIFICANT_DIGITS:
        text = format(dec, "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text
    return _tidy_exponent(format(dec, "e").replace("E", "e"))


def _bits(value: Fraction) -> int:
    return max(value.numerator.bit_length(), value.denominator.bit_length())


def _check_size(value: Number) -> Number:
    if isinstance(value, Fraction) and _bits(value) > MAX_BITS:
        raise CalculatorError(f"an intermediate result is too large (over {MAX_BITS} bits)")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("result is not a finite number")
    return value


def _to_float(value: Number) -> float:
    try:
        return float(value)
    except OverflowError:
        raise CalculatorError("a number is too large for this function") from None


def _as_int(value: Number, what: str) -> int:
    if isinstance(value, Fraction) and value.denominator == 1:
        return value.numerator
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise CalculatorError(f"{what} must be a whole number, got {format_number(value)}")


def _exact_root(value: Fraction, n: int) -> Fraction | None:
    """The exact n-th root of a non-negative fraction, or None if it is irrational."""

    def iroot(k: int) -> int | None:
        r: int | None
        if n == 2:
            r = math.isqrt(k)
        else:
            r = round(k ** (1.0 / n)) if k.bit_length() < 1000 else None
            if r is None:
                return None
        for cand in (r - 1, r, r + 1):
            if cand >= 0 and cand**n == k:
                return cand
        return None

    num, den = iroot(value.numerator), iroot(value.denominator)
    if num is None or den is None:
        return None
    return Fraction(num, den)


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(exponent, Fraction) and exponent.denominator == 1:
        exp = exponent.numerator
        if abs(exp) > MAX_EXPONENT:
            raise CalculatorError(f"exponent {exp} is larger than the limit of {MAX_EXPONENT}")
        if isinstance(base, Fraction):
            if base == 0 and exp < 0:
                raise ZeroDivisionError
            # (bits-1)*exp is a lower bound on the result's size: refuse before computing
            if (_bits(base) - 1) * abs(exp) > MAX_BITS:
                raise CalculatorError(f"the result of this power would exceed {MAX_BITS} bits")
            return base**exp
        return math.pow(base, exp)
    # A fractional exponent: exact when the root is exact (8**(1/3) == 2), else a float.
    if isinstance(exponent, Fraction) and isinstance(base, Fraction) and base >= 0:
        if exponent.denominator <= 64 and abs(exponent.numerator) <= MAX_EXPONENT:
            root = _exact_root(base, exponent.denominator)
            if root is not None:
                return _power(root, Fraction(exponent.numerator))
    b, e = _to_float(base), _to_float(exponent)
    if b < 0:
        raise CalculatorError("a negative number to a fractional power is not a real number")
    if b == 0 and e < 0:
        raise ZeroDivisionError
    return math.pow(b, e)


def _sqrt(x: Number) -> Number:
    if x < 0:
        raise CalculatorError(f"sqrt of a negative number ({format_number(x)})")
    if isinstance(x, Fraction):
        root = _exact_root(x, 2)
        if root is not None:
            return root
        # math.sqrt on huge ints overflows; isqrt-based scaling keeps 53+ bits of precision
        if _bits(x) > 1000:
            return math.exp(_log(x) / 2)
    return math.sqrt(_to_float(x))


def _log(x: Number, base: Number | None = None) -> float:
    def ln(v: Number) -> float:
        if v <= 0:
            raise CalculatorError(f"log of a non-positive number ({format_number(v)})")
        if isinstance(v, Fraction):  # math.log accepts arbitrarily large ints
            return math.log(v.numerator) - math.log(v.denominator)
        return math.log(v)

    if base is None:
        return ln(x)
    denominator = ln(base)
    if denominator == 0:
        raise CalculatorError("log base 1 is undefined")
    return ln(x) / denominator


def _exact_log(x: Number, base: int) -> Number:
    # log10(1000) should be exactly 3, not 2.9999999999999996
    if isinstance(x, Fraction) and x > 0:
        for candidate in (x, 1 / x):
            if candidate.denominator == 1 and candidate.numerator >= 1:
                n, k = candidate.numerator, 0
                while n % base == 0:
                    n //= base
                    k += 1
                if n == 1:
                    return Fraction(k if candidate is x else -k)
    return _log(x, Fraction(base))


def _round(x: Number, places: Number | None = None) -> Number:
    """Round half away from zero, the way people round (Python's round() is half-to-even)."""
    digits = 0 if places is None else _as_int(places, "round()'s number of places")
    if abs(digits) > 100:
        raise CalculatorError("round() places must be between -100 and 100")
    exact = x if isinstance(x, Fraction) else Fraction(repr(x))
    scale = Fraction(10) ** digits
    scaled = exact * scale
    rounded = math.floor(abs(scaled) + Fraction(1, 2))
    result = Fraction(rounded if scaled >= 0 else -rounded) / scale
    return result if isinstance(x, Fraction) else float(result)


def _trig(fn: Callable[[float], float]) -> Callable[[Number], float]:
    def wrapped(x: Number) -> float:
        result = fn(_to_float(x))
        # sin(pi) is 1.2e-16 in floating point; people mean 0
        return 0.0 if abs(result) < 1e-15 else result

    return wrapped


def _factorial(x: Number) -> Fraction:
    n = _as_int(x, "factorial()'s argument")
    if n < 0 or n > MAX_FACTORIAL:
        raise CalculatorError(f"factorial() takes a whole number from 0 to {MAX_FACTORIAL}")
    return Fraction(math.factorial(n))


def _minmax(pick: Callable[..., Number], name: str) -> Callable[..., Number]:
    def wrapped(*args: Number) -> Number:
        if not args:
            raise CalculatorError(f"{name}() needs at least one number")
        return pick(args)

    return wrapped


def _floor(x: Number) -> Fraction:
    return Fraction(math.floor(x))


def _ceil(x: Number) -> Fraction:
    return Fraction(math.ceil(x))


def _deg(fn: Callable[[float], float]) -> Callable[[Number], float]:
    return lambda x: fn(_to_float(x))


# name -> (callable, min args, max args)
_FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int]] = {
    "sqrt": (_sqrt, 1, 1),
    "cbrt": (lambda x: _power(x, Fraction(1, 3)) if x >= 0 else -_power(-x, Fraction(1, 3)), 1, 1),
    "log": (_log, 1, 2),
    "ln": (_log, 1, 1),
    "log10": (lambda x: _exact_log(x, 10), 1, 1),
    "log2": (lambda x: _exact_log(x, 2), 1, 1),
    "exp": (lambda x: math.exp(_to_float(x)), 1, 1),
    "sin": (_trig(math.sin), 1, 1),
    "cos": (_trig(math.cos), 1, 1),
    "tan": (_trig(math.tan), 1, 1),
    "asin": (_trig(math.asin), 1, 1),
    "acos": (_trig(math.acos), 1, 1),
    "atan": (_trig(math.atan), 1, 1),
    "sinh": (_trig(math.sinh), 1, 1),
    "cosh": (_trig(math.cosh), 1, 1),
    "tanh": (_trig(math.tanh), 1, 1),
    "degrees": (_deg(math.degrees), 1, 1),
    "radians": (_deg(math.radians), 1, 1),
    "abs": (abs, 1, 1),
    "round": (_round, 1, 2),
    "floor": (_floor, 1, 1),
    "ceil": (_ceil, 1, 1),
    "min": (_minmax(min, "min"), 1, 100),
    "max": (_minmax(max, "max"), 1, 100),
    "factorial": (_factorial, 1, 1),
}
_CONSTANTS: dict[str, Number] = {"pi": math.pi, "e": math.e, "tau": math.tau}

_BINARY: dict[type, Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _power,
}


class _Evaluator:
    def __init__(self, source: str, deadline: float) -> None:
        self.source = source
        self.deadline = deadline

    def eval(self, node: ast.AST, depth: int) -> Number:
        if depth > MAX_DEPTH:
            raise CalculatorError(f"expression is nested more than {MAX_DEPTH} levels deep")
        self._tick()
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self.eval(node.operand, depth + 1)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            # Walk a left-leaning chain ("1+2+3+...") iteratively, so a long sum is not "deep".
            chain: list[ast.BinOp] = []
            while isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
                chain.append(node)
                node = node.left
            value = self.eval(node, depth + 1)
            for link in reversed(chain):
                right = self.eval(link.right, depth + 1)
                if isinstance(link.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
                    raise ZeroDivisionError
                value = _check_size(_BINARY[type(link.op)](value, right))
                self._tick()
            return value
        if isinstance(node, ast.Name):
            if node.id in _CONSTANTS:
                return _CONSTANTS[node.id]
            raise CalculatorError(f"unknown name {node.id!r}; constants are {', '.join(_CONSTANTS)}")
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        if isinstance(node, ast.Tuple) and depth == 0:
            raise CalculatorError("give one expression, not several separated by commas")
        snippet = ast.get_source_segment(self.source, node) or type(node).__name__
        raise CalculatorError(f"unsupported expression: {snippet[:60]!r}")

    def _tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise CalculatorError("evaluation took longer than its time limit")

    def _constant(self, node: ast.Constant) -> Number:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CalculatorError(f"only numbers are allowed, got {value!r:.60}")
        if isinstance(value, int):
            return _check_size(Fraction(value))
        # Read the digits as written: 0.1 is exactly 1/10, and 1e999 is not float("inf").
        text = ast.get_source_segment(self.source, node) or repr(value)
        _, _, exponent = text.lower().replace("_", "").partition("e")
        if exponent and abs(int(exponent)) > 3_000:
            raise CalculatorError(f"number {text[:40]!r} is too large")
        return _check_size(Fraction(text.replace("_", "")))

    def _call(self, node: ast.Call, depth: int) -> Number:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)[:40]
            raise CalculatorError(f"unknown function {name!r}; available: {', '.join(sorted(_FUNCTIONS))}")
        if node.keywords:
            raise CalculatorError("functions take positional arguments only")
        fn, lo, hi = _FUNCTIONS[node.func.id]
        if not lo <= len(node.args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise CalculatorError(f"{node.func.id}() takes {want} arguments, got {len(node.args)}")
        args = [self.eval(arg, depth + 1) for arg in node.args]
        return _check_size(fn(*args))


# --------------------------------------------------------------------------------------------
# Finishing an equation a model is writing ("... so she has 16 - 3 - 4 =" -> "9").

# What may stand left of "=" in a written-out calculation: digits, money signs, separators,
# operators (ASCII, Unicode and LaTeX) and brackets. A letter ends the expression.
_EQUATION_TAIL = re.compile(r"(?:[0-9.,%()$€£ \t]|\\[$(\[]|\\times|\\div|\\cdot|\\left|\\right|[-+*/×÷·−^])+$")
# "\[" and "\(" open LaTeX math: delimiters, not brackets of the sum.
_LATEX_OPS = (
    ("\\times", "*"),
    ("\\cdot", "*"),
    ("\\div", "/"),
    ("\\left", ""),
    ("\\right", ""),
    ("\\[", " "),
    ("\\(", " "),
)
_TWO_NUMBERS = re.compile(r"\d[\d.,]*\s*%?\s*[-+*/×÷·−^]\s*\(*\s*[$€£]?\s*\.?\d")
MAX_EQUATION_CHARS = 120
_GROUPED = re.compile(r"\d,\d{3}")
# Korean figures as people write them in a calculation: "30만 원 × 2%", "3일 × 3만 원". The
# counter word after a number is a unit, not part of the sum, and 만/천/억 multiply (a number's
# own 만 must not be dropped: "120만 원 × 5/12" is 50만, not 5/12).
KOREAN_MULTIPLIERS = {"억": 10**8, "만": 10**4, "천": 10**3, "백": 100}
KOREAN_MULTIPLIER_WORDS = "|".join(KOREAN_MULTIPLIERS)
"""The multipliers as a regex alternation, for patterns that read Korean figures."""
_KOREAN_COUNTERS = "원|일|회|번|건|개|명|박|장|포인트|시간|개월|달|년|주|분|초|점"
_KOREAN_FIGURE = re.compile(
    rf"(\d+(?:,\d{{3}})*(?:\.\d+)?)[ \t]?({KOREAN_MULTIPLIER_WORDS})?[ \t]?(?:{_KOREAN_COUNTERS})?(?![가-힣A-Za-z])"
)
_HAS_KOREAN_FIGURE = re.compile(rf"\d[ \t]?(?:{KOREAN_MULTIPLIER_WORDS}|{_KOREAN_COUNTERS})")
# A bullet that starts the line ("- 3 × 4 ="): a list mark, not a minus sign.
_LINE_BULLET = re.compile(r"(^|\n)[ \t]*[-*•][ \t]+(?=[\d(])")
_OPERATOR_BEFORE = re.compile(r"[-+*/×÷·−^][ \t]*$")
# "<figure> |<operator>": a candidate that starts with the operator after a figure.
_DROPS_LEFT_OPERAND = re.compile(r".*[\d)%][ \t]*\|[ \t]*[-+*/×÷·−^]", re.S)


def _plain_korean_figures(text: str) -> str:
    """``text`` with its Korean figures as plain numbers ("30만 원 × 2%" -> "300000 × 2%")."""
    return _KOREAN_FIGURE.sub(_plain_figure, text) if _HAS_KOREAN_FIGURE.search(text) else text


def _plain_figure(match: re.Match[str]) -> str:
    """ "30만 원" -> "300000", "1.5만" -> "15000", "500원" -> "500"."""
    digits, multiplier = match.group(1), match.group(2)
    if not multiplier:
        return digits  # "300,000" keeps its commas: the result is then written in kind
    return format((Decimal(digits.replace(",", "")) * KOREAN_MULTIPLIERS[multiplier]).normalize(), "f")


def finish_equation(text: str) -> str | None:
    r"""The value of the calculation that ``text`` ends with, when ``text`` ends in ``=``.

    Used to let the calculator write the number after every ``=`` a small model writes in its
    reasoning (the calculator of Cobbe et al., 2021): arithmetic slips then never reach the
    next step. Returns None unless the ``=`` follows at least two numbers joined by an
    operator, so assignments (``x =``), comparisons and prose are left alone.

    >>> finish_equation("She sells 16 - 3 - 4 =")
    '9'
    >>> finish_equation(r"so \( 3 \times \$2.50 =")
    '7.5'
    >>> finish_equation("total = price =") is None
    True
    """
    if not text.endswith("="):
        return None
    window = _plain_korean_figures(text[-MAX_EQUATION_CHARS - 1 : -1])
    window = _LINE_BULLET.sub(r"\1", window)
    tail = _EQUATION_TAIL.search(window)
    if tail is None:
        return None
    source = tail.group(0)
    for latex, plain in _LATEX_OPS:
        source = source.replace(latex, plain)
    source = source.replace("$", "").replace("€", "").replace("£", "").replace("\\", "")
    # Try the longest suffix first; a stray "(" or a sentence's "4. " makes a prefix invalid.
    for start in range(len(source)):
        if start and source[start - 1] not in " (\t":
            continue
        if _OPERATOR_BEFORE.search(source[:start]) or _DROPS_LEFT_OPERAND.match(source[:start] + "|" + source[start:]):
            continue  # "120 × 5/12" is not "5/12", nor "8 + 6 + 4" "+ 6 + 4": never drop the left operand
        candidate = source[start:].strip()
        if not candidate or not _TWO_NUMBERS.search(candidate):
            continue
        try:
            value = compute(candidate, time_limit=0.05)
        except CalculatorError:
            continue
        if isinstance(value, Fraction) and value.denominator != 1 and _exact_decimal(value) is None:
            return format(float(value), ".4g")  # 2/3 -> 0.6667: a sentence, not the tool's full text
        if isinstance(value, Fraction) and value.denominator == 1 and _GROUPED.search(candidate):
            return f"{value.numerator:,}"  # written as "80,000 + 50,000": answer in kind
        return format_number(value)
    return None


# A question that only asks for a calculation: "What is 17*23?", "calculate 15% of 80",
# "17*23=?", "3만 원 × 12는 얼마인가요?" (the frame around the expression is dropped).
_ASKING_EN = re.compile(
    r"^(?:(?:so|and|ok|okay|please)[, ]+)?(?:what(?:'s| is| are)|how much is|calculate|compute|evaluate|work out)\s+",
    re.I,
)
_ASKING_KO = re.compile(
    r"\s*(?:(?:은|는|이|가)\s*)?(?:얼마(?:예요|에요|인가요|입니까|야|지|일까요)?|계산(?:해\s*(?:줘|주세요|줄래)?|하면)?)$"
)


_KOREAN_PERCENT_OF = re.compile(r"^(\d[\d,]*(?:\.\d+)?)\s*[^\W\d]{0,3}의\s*(\d+(?:\.\d+)?)\s*%$")


def expression_asked(question: str) -> str | None:
    """The arithmetic expression ``question`` asks for and nothing else, if it is one.

    >>> expression_asked("What is 17*23?"), expression_asked("calculate 15% of 80")
    ('17*23', '15% of 80')
    >>> expression_asked("3만 원 × 12는 얼마인가요?"), expression_asked("1,250,000원의 3%는 얼마인가요?")
    ('30000 × 12', '3% of 1,250,000')
    >>> expression_asked("What is 17*23 in hex?") is None, expression_asked("What is 2024?") is None
    (True, True)
    """
    text = question.strip().rstrip("?!. ")
    text = _ASKING_KO.sub("", _ASKING_EN.sub("", text)).strip().rstrip("=? ").strip()
    text = _plain_korean_figures(text).strip()
    text = _KOREAN_PERCENT_OF.sub(r"\2% of \1", text)  # "A원의 B%" is "B% of A"
    if len(text) > MAX_EQUATION_CHARS or not (_TWO_NUMBERS.search(text) or _PERCENT_OF.search(text)):
        return None
    try:
        compute(text, time_limit=0.05)
    except CalculatorError:
        return None
    return text
