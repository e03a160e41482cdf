"""The ``futures`` patch: ``ThreadPoolExecutor.submit`` runs the callable in the submitter's context.

Worker threads are long-lived and start with an empty context, so without this a subsegment begun
in a pool thread finds no segment (upstream #341, #388, #446, #52). ``loop.run_in_executor`` and
libraries built on thread pools (s3transfer behind boto3's ``upload_file``/``download_file``) go
through ``submit``, so they are covered too. Each submission runs in its own copy of the context,
taken at submit time: concurrent tasks never share one, and what a task sets never leaks back.

``ProcessPoolExecutor`` is left alone: a context cannot cross a process boundary.
"""
import contextvars
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from .._patching import guard, is_wrapped, unwrap, wrap

log = logging.getLogger(__name__)

__all__ = ['patch', 'unpatch', 'is_patched']


def _submit_in_context(wrapped: Callable, instance: Any, args, kwargs) -> Any:
    # No is_suppressed() early exit on purpose: propagation records nothing, and the suppression
    # flag is itself a context variable, so copying the context carries suppression into the
    # worker as well, which is exactly what suppressed code expects.
    if not args:
        # submit(fn=...) was removed in 3.9; let the executor raise its own TypeError.
        return wrapped(*args, **kwargs)
    fn, rest = args[0], args[1:]
    return wrapped(contextvars.copy_context().run, fn, *rest, **kwargs)


def patch() -> None:
    """Make ``ThreadPoolExecutor.submit`` run each callable in a copy of the submitting context.

    Idempotent. Subclasses that call ``super().submit`` (most do) are covered as well.
    """
    if is_wrapped(ThreadPoolExecutor, 'submit'):
        return
    wrap(ThreadPoolExecutor, 'submit', guard(_submit_in_context))
    log.debug('Patched concurrent.futures.ThreadPoolExecutor.submit for context propagation.')


def unpatch() -> None:
    """Undo :func:`patch`; a no-op when not patched."""
    unwrap(ThreadPoolExecutor, 'submit')


def is_patched() -> bool:
    """Return True while :func:`patch` is in effect."""
    return is_wrapped(ThreadPoolExecutor, 'submit')
