"""All of the server's behaviour, grouped by domain (board, git, logs, agents, team, runners, executions, …).

``docs/architecture.md`` gives one paragraph per package and the order they may import each other in;
``container.py`` is the composition root that wires them, from the factories in ``composition/``.
"""
