"""Alembic migrations of the job store (run through :mod:`flow.store.migrate`)."""
