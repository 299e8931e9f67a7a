"""A cloud server shared by a team: accounts, the access scope of each request, the audit log.

Owns user accounts and their tokens (``accounts``), who is acting and what they may see (``access``), the
append-only audit log (``audit``) and the composition of the three with the stream watch that closes
revoked connections (``service``: ``Team``, built in cloud mode only).

May import ``db``, ``errors`` and the typed configuration. Everything that scopes data to an account
imports ``team.access``; nothing here imports another services package.
"""
