"""Persistence: SQLAlchemy models, sessions, repositories, migrations and the credential vault."""
