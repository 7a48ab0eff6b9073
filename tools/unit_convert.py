"""A workspace-local tool: exact unit conversion for the demo bot.

Any module-level @tool in a workspace's tools/ folder can be named in an agent spec's `tools:`.
The file is only imported when a spec asks for one of its tools.
"""

from fractions import Fraction

from langchain_core.tools import tool

# Each unit as an exact multiple of its dimension's base unit (metre, kilogram, litre, second).
_UNITS: dict[str, tuple[str, Fraction]] = {
    "mm": ("length", Fraction(1, 1000)),
    "cm": ("length", Fraction(1, 100)),
    "m": ("length", Fraction(1)),
    "km": ("length", Fraction(1000)),
    "in": ("length", Fraction(254, 10000)),
    "ft": ("length", Fraction(3048, 10000)),
    "yd": ("length", Fraction(9144, 10000)),
    "mi": ("length", Fraction(1609344, 1000)),
    "g": ("mass", Fraction(1, 1000)),
    "kg": ("mass", Fraction(1)),
    "lb": ("mass", Fraction(45359237, 100000000)),
    "oz": ("mass", Fraction(45359237, 1600000000)),
    "ml": ("volume", Fraction(1, 1000)),
    "l": ("volume", Fraction(1)),
    "gal": ("volume", Fraction(3785411784, 1000000000)),
    "s": ("time", Fraction(1)),
    "min": ("time", Fraction(60)),
    "h": ("time", Fraction(3600)),
    "day": ("time", Fraction(86400)),
}
_TEMPERATURES = {"c", "f", "k"}


def _to_kelvin(value: Fraction, unit: str) -> Fraction:
    return {"c": value + Fraction(27315, 100), "f": (value - 32) * Fraction(5, 9) + Fraction(27315, 100), "k": value}[
        unit
    ]


def _from_kelvin(value: Fraction, unit: str) -> Fraction:
    return {"c": value - Fraction(27315, 100), "f": (value - Fraction(27315, 100)) * Fraction(9, 5) + 32, "k": value}[
        unit
    ]


@tool
def unit_convert(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a quantity between units, e.g. 5 mi to km, 70 f to c, 2 lb to kg.

    Units: mm cm m km in ft yd mi (length), g kg lb oz (mass), ml l gal (volume),
    s min h day (time), c f k (temperature).
    """
    source, target = from_unit.strip().lower(), to_unit.strip().lower()
    amount = Fraction(str(value))
    if source in _TEMPERATURES and target in _TEMPERATURES:
        result = _from_kelvin(_to_kelvin(amount, source), target)
    elif source in _UNITS and target in _UNITS:
        (dim_a, scale_a), (dim_b, scale_b) = _UNITS[source], _UNITS[target]
        if dim_a != dim_b:
            return f"error: can't convert {dim_a} ({from_unit}) to {dim_b} ({to_unit})"
        result = amount * scale_a / scale_b
    else:
        unknown = source if source not in _UNITS and source not in _TEMPERATURES else target
        return f"error: unknown unit {unknown!r}; known: {', '.join([*_UNITS, *sorted(_TEMPERATURES)])}"
    return f"{value:g} {from_unit} = {float(result):.6g} {to_unit}"


unit_convert.metadata = {"effect": "read"}
