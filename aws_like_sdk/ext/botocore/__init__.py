"""Trace AWS calls made with botocore (and so boto3)."""
from .patch import patch, unpatch

__all__ = ['patch', 'unpatch']
