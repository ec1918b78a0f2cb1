"""Storage: SQLAlchemy models, Alembic migrations, repositories and the hash-chained audit log.

Import the submodules (``ecert.store.db``, ``.models``, ``.repo``, ``.audit``); nothing here connects.
"""
