"""The factories the composition root (``services/container.py``) assembles the server from.

Each builds one piece from the settings: the agent homes, launcher, environment and login terminal
(``agents``); the runner of processes, local or per-attempt containers, and the checkouts and containers
made ahead (``runners``); the execution engine's parts wired together (``executions``); the fetch behind a
branch status (``remote_refresh``). Kept out of ``container.py`` so that it shows the assembly and these
show how each piece is made.

May import any service package and ``config``; nothing in ``services/`` imports this package but
``container.py``, and nothing here imports ``container.py``.
"""
