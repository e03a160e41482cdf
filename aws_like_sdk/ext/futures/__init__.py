"""Carry the trace context into ``concurrent.futures`` thread pools (and ``loop.run_in_executor``)."""
from .patch import is_patched, patch, unpatch

__all__ = ['patch', 'unpatch', 'is_patched']
