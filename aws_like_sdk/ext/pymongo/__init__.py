"""Trace MongoDB commands sent by pymongo."""
from .patch import XRayCommandListener, patch, unpatch

__all__ = ['patch', 'unpatch', 'XRayCommandListener']
