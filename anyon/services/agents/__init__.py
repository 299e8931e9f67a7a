"""Coding agents: which agents exist and how each is started, where they keep their logins, and the
approvals they ask for.

Owns the executor profiles: the catalogue of executors, options and built-in variants
(``profile_catalog``), each agent's command line (``agent_commands``), the validation and merging of the
profile layers (``profile_layers``) and the merged view the services hold (``executors``); the pinned CLI
versions and the choice of binary (``launchers``), the agent homes per deployment and per account
(``agent_home``), the browser login terminal (``agent_login``) and pending tool approvals (``approvals``).
The clients of agents that speak a protocol (``protocols``) and the output normalisers (``normalizer``) are
sibling packages.

May import ``runners.base`` (the errors of a start), ``team.access`` (the acting account), ``db.models``
and ``db.columns``, ``normalizer`` (timestamps) and ``errors``. Nothing here starts a process: the
execution engine does.
"""
