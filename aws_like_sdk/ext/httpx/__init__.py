"""Trace outgoing calls made with ``httpx`` (``Client`` and ``AsyncClient``)."""
from .patch import patch, unpatch

__all__ = ['patch', 'unpatch']
