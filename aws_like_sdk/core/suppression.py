"""A context flag that switches instrumentation off for the SDK's own I/O.

The sampling connector and emitters run inside :func:`suppress_tracing`; every patch checks
:func:`is_suppressed` first, so the SDK never traces itself. Being a ContextVar, the flag is
per thread and per asyncio task.
"""
import contextlib
from contextvars import ContextVar
from typing import Iterator

_SUPPRESSED: ContextVar[bool] = ContextVar('aws_like_sdk_suppressed', default=False)


#: ``is_suppressed() -> bool``: True while inside :func:`suppress_tracing`. It is the context
#: variable's own ``get``, so every patch and middleware checks the flag without a Python-level call.
is_suppressed = _SUPPRESSED.get


@contextlib.contextmanager
def suppress_tracing() -> Iterator[None]:
    """Disable all instrumentation in the current context for the duration of the block."""
    token = _SUPPRESSED.set(True)
    try:
        yield
    finally:
        _SUPPRESSED.reset(token)
