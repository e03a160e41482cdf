"""Trace DynamoDB operations made with PynamoDB."""
from .patch import patch, unpatch

__all__ = ['patch', 'unpatch']
