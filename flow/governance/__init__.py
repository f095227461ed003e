"""Who did what and who may read what: the hash-chained audit log, the audit trail of
federation traffic and data reads, table privileges, and their operations."""
