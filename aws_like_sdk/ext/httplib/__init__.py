"""Trace outgoing calls made with ``http.client`` (and so ``urllib.request``)."""
from .patch import PATCH_FLAG, add_ignored, patch, reset_ignored, unpatch

__all__ = ['patch', 'unpatch', 'add_ignored', 'reset_ignored', 'PATCH_FLAG']
