"""Patch libraries (and the user's own modules) so their calls are recorded as subsegments.

``patch(['requests', 'sqlite3'])`` calls ``aws_like_sdk.ext.<name>.patch()`` once per process. A
library that is already imported is patched at once; one that is not is patched by a post-import
hook the moment it is first imported, so ``patch`` may run before or after the application's own
imports with the same result. Names that are not library integrations but resolve to a package or
module under the current working directory are "local" patches: every function and method defined
there is wrapped with ``xray_recorder.capture``.

:func:`unpatch` reverses all of it (library ``unpatch()``, pending hooks, local wrappers); it exists
mainly so tests can return to a clean process.
"""
import importlib
import importlib.util
import inspect
import logging
import os
import pkgutil
import re
import sys
import threading
from types import ModuleType
from typing import Any, Callable, Dict, Iterable, List, Optional, Pattern, Set, Tuple

import wrapt

from .. import global_sdk_config

log = logging.getLogger(__name__)

__all__ = ['patch', 'patch_all', 'unpatch', 'SUPPORTED_MODULES', 'NO_DOUBLE_PATCH']

# Every library integration patch() knows, by the name users pass (alphabetical).
SUPPORTED_MODULES = (
    'aiobotocore', 'botocore', 'futures', 'httplib', 'httpx', 'mysql', 'pg8000', 'psycopg', 'psycopg2',
    'pymongo', 'pymysql', 'pynamodb', 'requests', 'sqlalchemy_core', 'sqlite3',
)

# What patch_all() patches unless double_patch=True. httplib sits under requests and botocore; the
# outer layer suppresses the inner one, so both together still give one subsegment per call, but
# leaving the standard library alone by default keeps upstream's behaviour for urllib users.
NO_DOUBLE_PATCH = tuple(name for name in SUPPORTED_MODULES if name != 'httplib')

# The library whose import triggers each integration. Dotted targets hook the submodule the
# integration wraps, so the hook fires only once that submodule exists.
_TARGETS: Dict[str, str] = {
    'aiobotocore': 'aiobotocore',
    'botocore': 'botocore',
    'pynamodb': 'pynamodb',
    'requests': 'requests',
    'sqlite3': 'sqlite3',
    'mysql': 'mysql.connector',
    'httplib': 'http.client',
    'pymongo': 'pymongo',
    'pymysql': 'pymysql',
    'psycopg2': 'psycopg2',
    'psycopg': 'psycopg',
    'pg8000': 'pg8000',
    'sqlalchemy_core': 'sqlalchemy',
    'httpx': 'httpx',
    'futures': 'concurrent.futures',
}

_ALIASES: Dict[str, Tuple[str, ...]] = {
    'boto3': ('botocore',),
    'aioboto3': ('aiobotocore',),
    'pynamodb': ('pynamodb', 'botocore'),
}

_EXT_PREFIX = 'aws_like_sdk.ext.'

# Names patched or waiting for their import hook. The library integrations discard their own
# name in their unpatch() (as upstream's do), so this set, not a private one, is the truth.
_PATCHED_MODULES: Set[str] = set()
# name -> token of the hook registered for it; a hook whose token is no longer here does nothing,
# which is how a deferred patch is cancelled (wrapt has no way to deregister a hook).
_PENDING: Dict[str, object] = {}
# local module name -> [(owner, attribute, original value)] so local patches can be undone.
_LOCAL_ORIGINALS: Dict[str, List[Tuple[Any, str, Any]]] = {}
_lock = threading.RLock()


def patch_all(double_patch: bool = False) -> None:
    """Patch every supported library that is installed.

    Libraries that are not installed, or whose integration fails, are skipped with a debug log.

    Args:
        double_patch: also patch ``httplib`` (``http.client``, hence ``urllib``); calls made through
            requests or botocore still get exactly one subsegment. Off by default, as upstream.
    """
    patch(SUPPORTED_MODULES if double_patch else NO_DOUBLE_PATCH, raise_errors=False)


def patch(modules_to_patch: Iterable[str], raise_errors: bool = True,
          ignore_module_patterns: Optional[Iterable[str]] = None) -> None:
    """Patch the named libraries and local modules; safe to call any number of times.

    Args:
        modules_to_patch: names from :data:`SUPPORTED_MODULES` (plus the aliases ``boto3``,
            ``aioboto3``), or names of packages/modules under the current working directory.
        raise_errors: raise when a library integration cannot be set up (library not installed,
            integration failed); when False such failures are logged at debug level only.
        ignore_module_patterns: regular expressions (``re.match`` against full module names) of
            local modules and sub-packages to leave alone.

    Raises:
        ValueError: for a relative module name (leading ``.``).
        Exception: for names that are neither supported libraries nor local modules.
        ImportError: (``raise_errors=True``) when a library or its integration is missing.
    """
    if isinstance(modules_to_patch, str):
        modules_to_patch = (modules_to_patch,)
    modules_to_patch = tuple(modules_to_patch)
    if not global_sdk_config.sdk_enabled():
        log.debug('Skipped patching modules %s because the SDK is currently disabled.',
                  ', '.join(modules_to_patch))
        return

    libraries: List[str] = []
    for name in modules_to_patch:
        for resolved in _ALIASES.get(name, (name,)):
            if resolved not in libraries:
                libraries.append(resolved)

    relative = [name for name in libraries if name.startswith('.')]
    if relative:
        raise ValueError('relative packages not supported for patching: %s' % ', '.join(relative))
    unknown = [name for name in libraries if name not in SUPPORTED_MODULES]
    local = [name for name in unknown if _is_local_module(name)]
    unsupported = [name for name in unknown if name not in local]
    if unsupported:
        raise Exception('modules %s are currently not supported for patching' % ', '.join(unsupported))

    for name in libraries:
        if name in local:
            continue
        try:
            _patch_library(name)
        except Exception:
            if raise_errors:
                raise
            log.debug('Failed to patch module %s.', name, exc_info=True)

    patterns = [re.compile(pattern) for pattern in (ignore_module_patterns or ())]
    for name in local:
        _patch_local_package(name, patterns)


def unpatch(modules_to_unpatch: Optional[Iterable[str]] = None) -> None:
    """Undo :func:`patch` for the given names, or for everything when None.

    Library integrations get their ``unpatch()`` called, deferred patches are cancelled, and local
    functions and methods are restored. Mostly useful in tests.

    Args:
        modules_to_unpatch: names as given to :func:`patch` (aliases accepted), or None for all.
    """
    with _lock:
        if modules_to_unpatch is None:
            names = set(_PATCHED_MODULES) | set(_PENDING) | set(_LOCAL_ORIGINALS)
        else:
            if isinstance(modules_to_unpatch, str):
                modules_to_unpatch = (modules_to_unpatch,)
            names = set()
            for name in modules_to_unpatch:
                names.update(_ALIASES.get(name, (name,)))
                # A local package takes its sub-modules with it.
                known = set(_LOCAL_ORIGINALS) | set(_PENDING) | set(_PATCHED_MODULES)
                names.update(sub for sub in known if sub.startswith(name + '.'))
        for name in sorted(names):
            if name in _LOCAL_ORIGINALS or name not in SUPPORTED_MODULES:
                _unpatch_local(name)
            elif _PENDING.pop(name, None) is None and name in _PATCHED_MODULES:
                _unpatch_library(name)
            _PATCHED_MODULES.discard(name)


# -- library integrations --------------------------------------------------------------------------
def _patch_library(name: str) -> None:
    with _lock:
        if name in _PATCHED_MODULES:
            log.debug('%s already patched', name)
            return
        ext_name = _EXT_PREFIX + name
        if ext_name not in sys.modules and importlib.util.find_spec(ext_name) is None:
            raise ImportError('aws_like_sdk has no integration module %s' % ext_name, name=ext_name)
        target = _TARGETS[name]
        if target not in sys.modules and not _is_installed(target):
            raise ImportError('cannot patch %s: the library %s is not installed' % (name, target), name=target)
        if target in sys.modules:
            _apply_library(name)
            _PATCHED_MODULES.add(name)
            log.info('successfully patched module %s', name)
            return
        token = object()
        _PENDING[name] = token
        _PATCHED_MODULES.add(name)
    # Registered outside the lock: wrapt may call the hook at once if another thread just
    # finished importing the target, and the hook takes the lock itself.
    wrapt.register_post_import_hook(_make_library_hook(name, token), target)
    log.debug('%s will be patched when %s is imported', name, target)


def _make_library_hook(name: str, token: object) -> Callable[[ModuleType], None]:
    def on_import(module: ModuleType) -> None:
        with _lock:
            if _PENDING.get(name) is not token:
                return  # cancelled by unpatch(), or patched again since
            del _PENDING[name]
            _bind_to_parent(module)
            try:
                _apply_library(name)
            except Exception:  # noqa: BLE001 - the application's import must not fail because of us
                _PATCHED_MODULES.discard(name)
                log.warning('Failed to patch module %s on import of %s.', name, module.__name__, exc_info=True)
                return
        log.info('successfully patched module %s', name)
    return on_import


def _bind_to_parent(module: ModuleType) -> None:
    # Post-import hooks run before the import system binds a submodule to its package, so
    # ``import pkg.sub; pkg.sub.x`` inside an integration would fail; bind it now, as the import
    # system is about to anyway.
    parent_name, _, child = module.__name__.rpartition('.')
    parent = sys.modules.get(parent_name) if parent_name else None
    if parent is not None and getattr(parent, child, None) is None:
        setattr(parent, child, module)


def _apply_library(name: str) -> None:
    importlib.import_module(_EXT_PREFIX + name).patch()


def _unpatch_library(name: str) -> None:
    module = sys.modules.get(_EXT_PREFIX + name)
    undo = getattr(module, 'unpatch', None)
    if undo is None:
        log.debug('%s has no unpatch(); left patched', name)
        return
    try:
        undo()
    except Exception:  # noqa: BLE001
        log.warning('Failed to unpatch module %s.', name, exc_info=True)


def _is_installed(target: str) -> bool:
    top = target.partition('.')[0]
    try:
        if importlib.util.find_spec(top) is None:
            return False
        # Checking a submodule imports its parent package; only do so for cheap namespace parents.
        return top == target or importlib.util.find_spec(target) is not None
    except (ImportError, ValueError):
        return False


# -- local modules ---------------------------------------------------------------------------------
def _local_path(name: str) -> str:
    return os.path.join(os.getcwd(), *name.split('.'))


def _is_local_module(name: str) -> bool:
    if not all(part.isidentifier() for part in name.split('.')):
        return False
    path = _local_path(name)
    return os.path.isdir(path) or os.path.isfile(path + '.py')


def _ignored(name: str, patterns: List[Pattern[str]]) -> bool:
    if any(pattern.match(name) for pattern in patterns):
        log.debug('%s ignored due to rules: %s', name, [p.pattern for p in patterns])
        return True
    return False


def _patch_local_package(name: str, patterns: List[Pattern[str]]) -> None:
    """Patch ``name`` and, for a package, every sub-module and sub-package found on disk."""
    if not _ignored(name, patterns):
        _patch_local_module(name)
    path = _local_path(name)
    if not os.path.isdir(path):
        return
    for info in pkgutil.iter_modules([path]):
        sub = '%s.%s' % (name, info.name)
        if info.ispkg:
            _patch_local_package(sub, patterns)
        elif not _ignored(sub, patterns):
            _patch_local_module(sub)


def _patch_local_module(name: str) -> None:
    with _lock:
        if name in _PATCHED_MODULES:
            log.debug('%s already patched', name)
            return
        _PATCHED_MODULES.add(name)
        module = sys.modules.get(name)
        if module is None:
            token = object()
            _PENDING[name] = token
    if module is not None:
        _wrap_module(module)
        log.info('successfully patched module %s', name)
        return

    def on_import(imported: ModuleType) -> None:
        with _lock:
            if _PENDING.get(name) is not token:
                return
            del _PENDING[name]
        _bind_to_parent(imported)
        try:
            _wrap_module(imported)
        except Exception:  # noqa: BLE001
            log.warning('Failed to patch local module %s.', name, exc_info=True)
            return
        log.info('successfully patched module %s', name)

    wrapt.register_post_import_hook(on_import, name)


def _wrap_module(module: ModuleType) -> None:
    record = _LOCAL_ORIGINALS.setdefault(module.__name__, [])
    for attr, member in list(vars(module).items()):
        # Only what the module defines itself: imported functions and classes belong elsewhere.
        if getattr(member, '__module__', None) != module.__name__:
            continue
        if inspect.isclass(member):
            _wrap_class(module, member, record)
        elif inspect.isfunction(member):
            _wrap_function(module, attr, member, record)


def _wrap_class(module: ModuleType, cls: type, record: List[Tuple[Any, str, Any]]) -> None:
    # vars(cls) holds only what the class defines: inherited members are left to their own class.
    for attr, member in list(vars(cls).items()):
        if inspect.isclass(member):
            if member.__module__ == module.__name__ and member.__qualname__.startswith(cls.__qualname__ + '.'):
                _wrap_class(module, member, record)
        elif isinstance(member, classmethod):
            # A classmethod must be the outermost decorator, so it cannot be wrapped from outside.
            log.warning('Cannot automatically patch classmethod %s.%s, please apply decorator manually',
                        cls.__name__, attr)
        elif isinstance(member, staticmethod):
            func = member.__func__
            if inspect.isfunction(func) and func.__module__ == module.__name__:
                _wrap_function(cls, attr, func, record, original=member, modifier=staticmethod)
        elif inspect.isfunction(member) and member.__module__ == module.__name__:
            _wrap_function(cls, attr, member, record)


def _wrap_function(owner: Any, attr: str, func: Callable, record: List[Tuple[Any, str, Any]],
                   original: Any = None, modifier: Optional[Callable] = None) -> None:
    from . import xray_recorder
    from .models.subsegment import is_already_recording

    if is_already_recording(func):
        return
    name = attr
    if attr.startswith('__') and attr.endswith('__'):
        name = '%s.%s' % (owner.__name__, attr)
    wrapped = xray_recorder.capture(name=name)(func)
    if modifier is not None:
        wrapped = modifier(wrapped)
    record.append((owner, attr, func if original is None else original))
    setattr(owner, attr, wrapped)


def _unpatch_local(name: str) -> None:
    _PENDING.pop(name, None)
    for owner, attr, original in reversed(_LOCAL_ORIGINALS.pop(name, [])):
        try:
            setattr(owner, attr, original)
        except (AttributeError, TypeError):
            log.debug('Could not restore %r on %r', attr, owner)
