"""Fork hook shared by the samplers.

A child process inherits the parent's objects but not its threads, and any lock another thread held at
fork time stays locked forever in the child. Objects that own locks or threads register here and get a
``_after_fork_in_child()`` call in the child. The hook is registered with ``os.register_at_fork`` the first
time something registers (never at import).
"""
import logging
import os
import threading
import weakref
from typing import Any

log = logging.getLogger(__name__)

_registered: 'weakref.WeakSet[Any]' = weakref.WeakSet()
_hook_installed = False
_install_lock = threading.Lock()


def _run_child_hooks() -> None:
    global _install_lock
    # The install lock itself may have been held by another thread at fork time.
    _install_lock = threading.Lock()
    for obj in list(_registered):
        try:
            obj._after_fork_in_child()
        except Exception:  # a broken hook must not take the child down
            log.exception('Sampling state could not be reset after fork.')


def register_after_fork(obj: Any) -> None:
    """Call ``obj._after_fork_in_child()`` in every child forked after this call (weakly held)."""
    global _hook_installed
    _registered.add(obj)
    if _hook_installed or not hasattr(os, 'register_at_fork'):
        return
    with _install_lock:
        if not _hook_installed:
            os.register_at_fork(after_in_child=_run_child_hooks)
            _hook_installed = True
