"""ASGI 3 middleware (Starlette, FastAPI, Django ASGI, ...): ``XRayMiddleware(asgi_app, xray_recorder)``."""
from .middleware import SCOPE_KEY, XRayMiddleware

__all__ = ['XRayMiddleware', 'SCOPE_KEY']
