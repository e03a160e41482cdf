"""Generic WSGI middleware: ``XRayMiddleware(wsgi_app, xray_recorder, name=None)``."""
from .middleware import ENVIRON_KEY, XRayMiddleware, set_route

__all__ = ['XRayMiddleware', 'set_route', 'ENVIRON_KEY']
