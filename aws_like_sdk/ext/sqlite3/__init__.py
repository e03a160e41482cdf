"""sqlite3 integration: ``patch()`` wraps ``sqlite3.connect`` so queries become subsegments."""
from .patch import XRayTracedSQLite, patch, unpatch

__all__ = ['patch', 'unpatch', 'XRayTracedSQLite']
