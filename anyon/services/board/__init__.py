"""The board: projects, tasks, attempts, drafts, tags and images, and what the UI shows of them.

Owns the database side of the board's objects (create, list, update, delete), the git operations the UI
runs on an attempt (``attempt_git``: merge, push, rebase, diffs, through ``attempt_repos``, which does the
writes where the mode makes them safe), the event bus and the change events every state stream applies
(``events``, ``changes``), the new-project pickers (``filesystem``), onboarding, and the UI's own settings
(``user_config``, per account in cloud mode ``user_scoped_config``).

May import ``db``, ``git``, ``logs`` (JSON Patch frames, the diff stream), ``team.access`` (the acting
account), ``runners.base`` (errors of the container an attempt's git work runs in) and ``errors``. Nothing
here imports the execution engine, the agents or the API; the engine and GitHub import the board.
"""
