"""MCP server settings of the coding agents (spec §1.1 ``/api/mcp-config``, types.md §5).

Each agent keeps its MCP servers in its own config file (JSON, or TOML for Codex). This package knows
where that file is (:mod:`.locations`), what the contract's per-agent constants and catalogue are
(:mod:`.catalogue`), and how to replace the servers object while leaving the rest of the file as it was
(:mod:`.files`). It imports nothing from the API or the engine.
"""
