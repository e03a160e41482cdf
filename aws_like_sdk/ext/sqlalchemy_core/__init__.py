"""SQLAlchemy Core tracing through SQLAlchemy's public engine events: ``patch()`` / ``unpatch()``."""
from .patch import patch, unpatch

__all__ = ['patch', 'unpatch']
