"""The tamper-evident audit log: hash chain, signed checkpoints, verification, and its SQLite and PostgreSQL stores."""
