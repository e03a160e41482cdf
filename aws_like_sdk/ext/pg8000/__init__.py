"""pg8000 integration: ``patch()`` wraps the driver's ``connect`` so connections and queries are traced."""
from .patch import patch, unpatch

__all__ = ['patch', 'unpatch']
