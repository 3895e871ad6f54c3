"""Postgres adapter: the schema (SQLAlchemy Core), the engine, and the audit log."""
