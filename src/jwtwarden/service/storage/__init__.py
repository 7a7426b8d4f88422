"""Persistence for the token service: SQLAlchemy Core schema and migrations, the database, Redis."""
