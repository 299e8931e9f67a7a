"""Persistence: peewee models (the spec tables in ``models``, a team's accounts in ``account_models``) and
what they share (``columns``), versioned migrations, JSON serialization and the shared queries.

``Database.from_url(...)`` opens SQLite or PostgreSQL and binds the models; ``migrate()`` brings the schema
to the latest version.
"""

from anyon.services.db.database import Database, DatabaseConnectError, DatabaseUrlError

__all__ = ["Database", "DatabaseConnectError", "DatabaseUrlError"]
