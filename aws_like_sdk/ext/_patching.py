"""Wrapping helpers: the only module that touches wrapt for library patches.

Every library patch wraps call sites with :func:`wrap` (reversible with :func:`unwrap`) and guards
its wrapper with :func:`guard` / :func:`guard_async`, so a bug in instrumentation is logged once and
the original call still runs with its own result or exception.
"""
import functools
import logging
import os
import sys
import threading
from typing import Any, Callable, Set, Tuple

import wrapt

log = logging.getLogger(__name__)

# wrapt 2 made ObjectProxy a pure-Python subclass of the real base its wrappers derive from.
_PROXY_BASE = getattr(wrapt, 'BaseObjectProxy', wrapt.ObjectProxy)

_logged: Set[str] = set()
_logged_lock = threading.Lock()


def _reset_lock_in_child() -> None:
    global _logged_lock
    # A lock another thread held at fork() stays held forever in the child: replace it.
    _logged_lock = threading.Lock()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_reset_lock_in_child)


def log_once(key: str, message: str, *args: Any) -> None:
    """Log ``message`` at WARNING the first time ``key`` is seen, at DEBUG afterwards."""
    with _logged_lock:
        first = key not in _logged
        _logged.add(key)
    if first:
        log.warning(message, *args, exc_info=True)
    else:
        log.debug(message, *args)


def wrap(target: Any, name: str, wrapper: Callable) -> None:
    """Wrap ``target.<name>`` (``target`` is an object or a module name; ``name`` may be dotted)."""
    wrapt.wrap_function_wrapper(target, name, wrapper)


def unwrap(obj: Any, attr: str) -> None:
    """Undo :func:`wrap` on ``obj.attr``; a no-op when it is not wrapped."""
    current = getattr(obj, attr, None)
    if current is None:
        return
    # Class attributes hold the raw wrapper; look there first so bound methods are not unwrapped.
    raw = getattr(obj, '__dict__', {}).get(attr, current)
    if isinstance(raw, _PROXY_BASE) and hasattr(raw, '__wrapped__'):
        setattr(obj, attr, raw.__wrapped__)


def is_wrapped(obj: Any, attr: str) -> bool:
    raw = getattr(obj, '__dict__', {}).get(attr, getattr(obj, attr, None))
    return isinstance(raw, _PROXY_BASE)


class CallSites:
    """The call sites one integration wraps, patched and unpatched together.

    Args:
        sites: ``(module name, 'Class.method' path, wrapper)`` triples.

    ``patch()`` is idempotent; ``unpatch()`` undoes it (only for modules already imported, since a
    module never imported was never wrapped) and may be called any number of times.
    """

    def __init__(self, *sites: Tuple[str, str, Callable]) -> None:
        self._sites = sites
        self._lock = threading.Lock()
        self._inherited: Set[str] = set()
        self.patched = False

    def patch(self) -> None:
        with self._lock:
            if self.patched:
                return
            for module, path, wrapper in self._sites:
                owner, attr = _resolve(sys.modules.get(module) or __import__(module, fromlist=['_']), path)
                if owner is not None and attr not in getattr(owner, '__dict__', {}):
                    self._inherited.add(module + ':' + path)
                wrap(module, path, wrapper)
            self.patched = True

    def unpatch(self) -> None:
        with self._lock:
            for module, path, _ in self._sites:
                owner, attr = _resolve(sys.modules.get(module), path)
                if owner is None:
                    continue
                if module + ':' + path in self._inherited:
                    # The wrapper was set on a subclass over an inherited method: removing it lets
                    # the class inherit the live method again (unwrap would pin a stale copy).
                    if is_wrapped(owner, attr):
                        delattr(owner, attr)
                else:
                    unwrap(owner, attr)
            self._inherited.clear()
            self.patched = False


def _resolve(module: Any, path: str) -> Tuple[Any, str]:
    owner_path, _, attr = path.rpartition('.')
    owner = module
    for part in owner_path.split('.') if owner_path else ():
        owner = getattr(owner, part, None)
    return owner, attr


class _TrackedCall:
    """Stands in for the wrapped callable and remembers whether it ran and what it produced.

    A small object rather than a ``functools.wraps``-decorated closure: ``wraps`` costs microseconds
    per call, and attribute reads (``__name__`` and the like) are delegated anyway.
    """

    __slots__ = ('wrapped', 'called', 'result', 'error')

    def __init__(self, wrapped: Callable) -> None:
        self.wrapped = wrapped
        self.called = False
        self.result = None
        self.error: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.called = True
        try:
            self.result = self.wrapped(*args, **kwargs)
        except BaseException as exc:
            self.error = exc
            raise
        return self.result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


class _TrackedAsyncCall(_TrackedCall):
    __slots__ = ()

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.called = True
        try:
            self.result = await self.wrapped(*args, **kwargs)
        except BaseException as exc:
            self.error = exc
            raise
        return self.result


def guard(wrapper: Callable) -> Callable:
    """Make a wrapt wrapper fail-safe.

    The application's own exception (raised by the wrapped call) propagates unchanged. Any other
    exception comes from instrumentation: it is logged once and the caller gets what the original
    call produced, calling it now if the wrapper failed before calling it.
    """
    key = '%s.%s' % (getattr(wrapper, '__module__', '?'), getattr(wrapper, '__qualname__', '?'))

    @functools.wraps(wrapper)
    def guarded(wrapped, instance, args, kwargs):
        state = _TrackedCall(wrapped)
        try:
            return wrapper(state, instance, args, kwargs)
        except BaseException as exc:
            if state.error is not None and exc is state.error:
                raise
            log_once(key, 'Instrumentation %s failed; the call proceeds untraced.', key)
            if not state.called:
                return wrapped(*args, **kwargs)
            if state.error is not None:
                raise state.error from None
            return state.result

    return guarded


def guard_async(wrapper: Callable) -> Callable:
    """The :func:`guard` contract for wrappers of coroutine functions."""
    key = '%s.%s' % (getattr(wrapper, '__module__', '?'), getattr(wrapper, '__qualname__', '?'))

    @functools.wraps(wrapper)
    async def guarded(wrapped, instance, args, kwargs):
        state = _TrackedAsyncCall(wrapped)
        try:
            return await wrapper(state, instance, args, kwargs)
        except BaseException as exc:
            if state.error is not None and exc is state.error:
                raise
            log_once(key, 'Instrumentation %s failed; the call proceeds untraced.', key)
            if not state.called:
                return await wrapped(*args, **kwargs)
            if state.error is not None:
                raise state.error from None
            return state.result

    return guarded
