"""MCP both ways: use tools from any MCP server, and serve chatloom's tools and knowledge.

- :mod:`chatloom.mcp.config`: the ``mcp_servers`` entries of agent specs and ``chatloom.toml``;
- :mod:`chatloom.mcp.client`: connections to MCP servers (stdio and Streamable HTTP), started
  lazily, each call bounded by a timeout;
- :mod:`chatloom.mcp.tools`: MCP tools as chatloom tools (``server.tool``), under the policy;
- :mod:`chatloom.mcp.server`: ``chatloom mcp serve``, an agent's tools and knowledge as an MCP server.

Nothing here imports the ``mcp`` SDK at module level: a REPL with no MCP servers never pays
for it (``pip install 'chatloom[mcp]'``).
"""
