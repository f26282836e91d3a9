"""The services' databases: what every backend shares, and SQLite."""
