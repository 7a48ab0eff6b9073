"""A tiny MCP server written with the `mcp` SDK: any MCP client (chatloom included) can use it.

python units_server.py          # speaks MCP over stdin/stdout
"""

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

server = MCPServer("units")
FACTORS = {("km", "mi"): 0.621371, ("mi", "km"): 1.609344, ("kg", "lb"): 2.204623, ("lb", "kg"): 0.453592}


@server.tool(annotations=ToolAnnotations(read_only_hint=True))  # read-only: chatloom runs it without asking
def convert(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a value between km/mi and kg/lb."""
    factor = FACTORS.get((from_unit, to_unit))
    if factor is None:
        raise ValueError(f"can't convert {from_unit} to {to_unit}")
    return f"{value:g} {from_unit} = {value * factor:.2f} {to_unit}"


@server.tool()  # no annotation: chatloom treats it as a side effect and asks first
def save_favourite(conversion: str) -> str:
    """Save a conversion to the user's favourites."""
    return f"saved {conversion!r}"


if __name__ == "__main__":
    server.run("stdio")
