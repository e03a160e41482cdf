"""Trace AWS calls made with aiobotocore (and so aioboto3)."""
from .patch import patch, unpatch

__all__ = ['patch', 'unpatch']
