"""PostgreSQL: connections, migrations, the embedded server."""
