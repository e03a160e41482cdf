"""Trace outgoing calls made with ``requests``: ``patch()`` / ``unpatch()``."""
from .patch import patch, unpatch

__all__ = ['patch', 'unpatch']
