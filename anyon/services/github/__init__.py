"""GitHub: device-flow sign-in, the token, repositories, clone, push, pull requests, and the fetch that
keeps a branch status's remote refs current (``refresh``).

Owns everything that talks to GitHub (always the configured ``github.api_url``/``github.web_url``, so
GitHub Enterprise works) and the git transport that carries the token (clone, push and fetch through
libgit2 credential callbacks: the token never appears in a URL, an argv or a log line). May import the config
model, the database models, the git layer, the board (attempts' git, projects, the UI config) and
``team.access``; nothing here imports Falcon.
"""
