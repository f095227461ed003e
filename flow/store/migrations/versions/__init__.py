"""The job store's revisions, oldest first; Alembic reads them by path."""
