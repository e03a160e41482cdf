"""Helpers shared by the SQLAlchemy and Flask-SQLAlchemy ORM integrations."""
