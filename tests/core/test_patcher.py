"""In-process tests of core.patcher: name resolution, errors, idempotence, unpatch, local modules.

Import-order permutations run in fresh interpreters: see tests/ext/test_patch_ordering.py.
"""
import logging
import sqlite3
import sys
import textwrap
import uuid

import pytest

from aws_like_sdk import global_sdk_config
from aws_like_sdk.core import patch as core_patch
from aws_like_sdk.core import patch_all as core_patch_all
from aws_like_sdk.core import patcher
from aws_like_sdk.core.patcher import NO_DOUBLE_PATCH, SUPPORTED_MODULES, _PATCHED_MODULES, patch, unpatch
from aws_like_sdk.ext._patching import _PROXY_BASE, is_wrapped
from tests.support.udp_sink import walk


@pytest.fixture(autouse=True)
def _restore_patches():
    """Undo whatever a test patched, leaving other suites' patches alone."""
    before = set(_PATCHED_MODULES) | set(patcher._LOCAL_ORIGINALS)
    yield
    added = (set(_PATCHED_MODULES) | set(patcher._PENDING) | set(patcher._LOCAL_ORIGINALS)) - before
    unpatch(sorted(added))


def _names(tree):
    return [entity['name'] for entity, _ in walk(tree)][1:]


def test_public_names_are_the_upstream_ones():
    assert core_patch is patch
    assert core_patch_all is patcher.patch_all
    assert set(SUPPORTED_MODULES) == {
        'aiobotocore', 'botocore', 'pynamodb', 'requests', 'sqlite3', 'mysql', 'httplib', 'pymongo', 'pymysql',
        'psycopg2', 'psycopg', 'pg8000', 'sqlalchemy_core', 'httpx', 'futures'}
    assert set(NO_DOUBLE_PATCH) == set(SUPPORTED_MODULES) - {'httplib'}


def test_unsupported_name_raises_whatever_raise_errors_says():
    with pytest.raises(Exception, match='modules no_such_thing_here are currently not supported for patching'):
        patch(['no_such_thing_here'], raise_errors=False)


def test_relative_name_raises():
    with pytest.raises(ValueError, match='relative packages not supported'):
        patch(['.sibling'])


def test_disabled_sdk_patches_nothing(caplog_sdk):
    global_sdk_config.set_sdk_enabled(False)
    patch(['sqlite3'])
    assert 'sqlite3' not in _PATCHED_MODULES
    assert not is_wrapped(sqlite3, 'connect')
    assert 'SDK is currently disabled' in caplog_sdk.text


def test_already_imported_library_is_patched_at_once_and_only_once(xray, udp_sink):
    patch(['sqlite3'])
    patch(['sqlite3'])
    patch(('sqlite3',))
    assert 'sqlite3' in _PATCHED_MODULES
    assert is_wrapped(sqlite3, 'connect')
    assert not isinstance(sqlite3.connect.__wrapped__, _PROXY_BASE)
    with xray.in_segment('once'):
        sqlite3.connect(':memory:').execute('select 1').fetchall()
    (doc,) = udp_sink.wait_for(1)
    assert _names(doc) == [':memory:']


def test_unpatch_restores_and_allows_patching_again():
    original = sqlite3.connect
    patch(['sqlite3'])
    assert sqlite3.connect is not original
    unpatch(['sqlite3'])
    assert sqlite3.connect is original
    assert 'sqlite3' not in _PATCHED_MODULES
    patch(['sqlite3'])
    assert is_wrapped(sqlite3, 'connect')


def test_library_not_installed_is_a_clear_error_or_a_debug_line(monkeypatch, caplog_sdk):
    monkeypatch.setitem(patcher._TARGETS, 'sqlite3', 'no_such_library_%s' % uuid.uuid4().hex)
    with pytest.raises(ImportError, match='is not installed'):
        patch(['sqlite3'])
    assert 'sqlite3' not in _PATCHED_MODULES
    patch(['sqlite3'], raise_errors=False)
    assert 'sqlite3' not in _PATCHED_MODULES
    failures = [r for r in caplog_sdk.records if r.getMessage() == 'Failed to patch module sqlite3.']
    assert failures and all(r.levelno == logging.DEBUG for r in failures)


def test_missing_integration_module_is_reported(monkeypatch):
    # A supported name whose ext module is missing is an ImportError
    # naming what is missing, never a silent no-op; pointed at a prefix with no modules so the
    # test does not depend on which integrations exist yet.
    monkeypatch.setattr(patcher, '_EXT_PREFIX', 'aws_like_sdk.ext.no_such_')
    monkeypatch.setattr(patcher, '_PATCHED_MODULES', set())
    with pytest.raises(ImportError, match='no_such_sqlite3'):
        patch(['sqlite3'])


def test_aliases_resolve(monkeypatch):
    seen = []
    monkeypatch.setattr(patcher, '_patch_library', seen.append)
    patch(['boto3', 'aioboto3', 'pynamodb'])
    assert seen == ['botocore', 'aiobotocore', 'pynamodb']


def test_patch_all_leaves_httplib_out_unless_double_patch(monkeypatch):
    calls = []
    monkeypatch.setattr(patcher, 'patch', lambda modules, raise_errors=True: calls.append((tuple(modules), raise_errors)))
    patcher.patch_all()
    patcher.patch_all(double_patch=True)
    assert calls[0] == (NO_DOUBLE_PATCH, False)
    assert calls[1] == (SUPPORTED_MODULES, False)
    assert 'futures' in calls[0][0] and 'httplib' not in calls[0][0]


def test_a_failing_deferred_patch_is_logged_and_the_import_succeeds(monkeypatch, tmp_path, caplog_sdk):
    name = 'lib_%s' % uuid.uuid4().hex[:8]
    (tmp_path / ('%s.py' % name)).write_text('VALUE = 42\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(patcher._TARGETS, 'sqlite3', name)

    def broken_apply(integration):
        raise RuntimeError('integration bug')

    monkeypatch.setattr(patcher, '_apply_library', broken_apply)
    patch(['sqlite3'])
    assert 'sqlite3' in _PATCHED_MODULES
    module = __import__(name)
    assert module.VALUE == 42
    assert 'sqlite3' not in _PATCHED_MODULES
    assert 'Failed to patch module sqlite3 on import of %s' % name in caplog_sdk.text
    sys.modules.pop(name, None)


# -- local modules ---------------------------------------------------------------------------------
LOCAL_MODULE = '''
import json
from json import dumps


def top(x):
    return x + 1


async def atop(x):
    return x * 2


class Base:
    def inherited(self):
        return 'base'


class Thing(Base):
    label = 'thing'

    def __init__(self, value):
        self.value = value

    def method(self):
        return self.value

    def __call__(self):
        return 'called'

    @staticmethod
    def static(x):
        return x - 1

    @classmethod
    def make(cls):
        return cls(7)

    @property
    def prop(self):
        return self.value

    class Inner:
        def deep(self):
            return 'deep'
'''


@pytest.fixture
def local_package(tmp_path, monkeypatch):
    """A fresh package under a temporary cwd: pkg/{__init__,mod,skipme}.py and pkg/sub/inner.py."""
    name = 'localpkg_%s' % uuid.uuid4().hex[:8]
    root = tmp_path / name
    (root / 'sub').mkdir(parents=True)
    (root / '__init__.py').write_text('def init_func():\n    return "init"\n')
    (root / 'mod.py').write_text(textwrap.dedent(LOCAL_MODULE))
    (root / 'skipme.py').write_text('def skipped():\n    return "skipped"\n')
    (root / 'sub' / '__init__.py').write_text('')
    (root / 'sub' / 'inner.py').write_text('def inner_func():\n    return "inner"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(name + '.')]:
        del sys.modules[module]


def _exercise(pkg, mod, inner, skipme):
    import asyncio
    thing = mod.Thing(3)
    results = [pkg.init_func(), mod.top(1), asyncio.run(mod.atop(2)), thing.method(), thing(), mod.Thing.static(5),
               thing.static(5), mod.Thing.make().value, thing.prop, thing.inherited(), mod.Thing.Inner().deep(),
               inner.inner_func(), skipme.skipped(), mod.dumps([1])]
    return results


EXPECTED_RESULTS = ['init', 2, 4, 3, 'called', 4, 4, 7, 3, 'base', 'deep', 'inner', 'skipped', '[1]']
EXPECTED_NAMES = ['init_func', 'atop', 'top', 'Thing.__init__', 'method', 'Thing.__call__', 'static', 'static',
                  'Thing.__init__', 'Base.__init__', 'inherited', 'deep', 'inner_func']


def _run_local(xray, udp_sink, name):
    import importlib
    with xray.in_segment('local'):
        pkg = importlib.import_module(name)
        mod = importlib.import_module(name + '.mod')
        inner = importlib.import_module(name + '.sub.inner')
        skipme = importlib.import_module(name + '.skipme')
        results = _exercise(pkg, mod, inner, skipme)
    (doc,) = udp_sink.wait_for(1)
    return results, _names(doc)


@pytest.mark.parametrize('import_first', [False, True], ids=['deferred', 'immediate'])
def test_local_package_functions_and_methods_are_captured(xray, udp_sink, local_package, caplog_sdk, import_first):
    import importlib
    if import_first:
        for sub in ('', '.mod', '.sub.inner', '.skipme'):
            importlib.import_module(local_package + sub)
    patch([local_package], ignore_module_patterns=[r'.*\.skipme$'])
    results, names = _run_local(xray, udp_sink, local_package)
    assert results == EXPECTED_RESULTS
    # Thing.__init__ appears for Thing(3) and Thing.make(); Base defines no __init__ of its own,
    # classmethods, properties, inherited members, imports and ignored modules are left alone.
    expected = [n for n in EXPECTED_NAMES if n != 'Base.__init__']
    assert sorted(names) == sorted(expected)
    assert 'Cannot automatically patch classmethod Thing.make' in caplog_sdk.text
    mod = sys.modules[local_package + '.mod']
    assert isinstance(mod.Thing.__dict__['static'], staticmethod)
    assert isinstance(mod.Thing.__dict__['make'], classmethod)
    assert mod.dumps is __import__('json').dumps
    assert {local_package, local_package + '.mod', local_package + '.sub.inner'} <= _PATCHED_MODULES
    assert local_package + '.skipme' not in _PATCHED_MODULES


def test_local_patch_is_idempotent_and_reversible(xray, udp_sink, local_package):
    import importlib
    mod = importlib.import_module(local_package + '.mod')
    original_top, original_static = mod.top, mod.Thing.__dict__['static']
    patch([local_package])
    patch([local_package])
    with xray.in_segment('twice'):
        mod.top(1)
    (doc,) = udp_sink.wait_for(1)
    assert _names(doc) == ['top']
    unpatch([local_package])
    assert mod.top is original_top
    assert mod.Thing.__dict__['static'] is original_static
    assert local_package + '.mod' not in _PATCHED_MODULES


def test_local_single_module_file(xray, udp_sink, tmp_path, monkeypatch):
    name = 'single_%s' % uuid.uuid4().hex[:8]
    (tmp_path / ('%s.py' % name)).write_text('def work():\n    return "done"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    patch([name])
    module = __import__(name)
    with xray.in_segment('single'):
        assert module.work() == 'done'
    (doc,) = udp_sink.wait_for(1)
    assert _names(doc) == ['work']
    sys.modules.pop(name, None)


def test_unpatch_cancels_a_deferred_local_patch(xray, udp_sink, local_package):
    import importlib
    patch([local_package])
    unpatch([local_package])
    mod = importlib.import_module(local_package + '.mod')
    with xray.in_segment('cancelled'):
        mod.top(1)
    (doc,) = udp_sink.wait_for(1)
    assert _names(doc) == []
