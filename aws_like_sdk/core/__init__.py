"""Core recorder. ``xray_recorder`` is cheap to build: no socket, thread, file or HTTP client is
created at import; the sampler starts on first use and the emitter opens its socket on first send."""
from typing import Any

from .async_recorder import AsyncAWSXRayRecorder
from .recorder import AWSXRayRecorder

xray_recorder = AsyncAWSXRayRecorder()

__all__ = ['patch', 'patch_all', 'xray_recorder', 'AWSXRayRecorder']


def __getattr__(name: str) -> Any:
    # The patcher pulls in wrapt's import-hook machinery; load it only when asked for.
    if name in ('patch', 'patch_all'):
        from . import patcher
        return getattr(patcher, name)
    raise AttributeError('module %r has no attribute %r' % (__name__, name))
