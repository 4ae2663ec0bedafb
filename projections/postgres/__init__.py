"""PostgreSQL views of the payment streams: migrations, the exactly-once projection, checksums.

- ``migrate.migrate(connection, schema)`` creates or upgrades a schema from ``migrations/``.
- ``projection.PostgresProjection(connect, schema)`` applies stream batches to it.
- ``checksums.table_checksums(connection, schema)`` compares two schemas (rebuild, tests).
"""
