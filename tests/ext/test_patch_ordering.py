"""Import ↔ patch ↔ unpatch permutations, each in a fresh interpreter so import state is real.

Every script records segments to the test's UDP sink (through AWS_XRAY_DAEMON_ADDRESS) and prints
a JSON summary of the patcher's state on its last line.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.udp_sink import walk

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = '''
import json, sys
SQLITE_AT_START = 'sqlite3' in sys.modules
from aws_like_sdk.core import xray_recorder, patch, patch_all
from aws_like_sdk.core import patcher
from aws_like_sdk.ext._patching import is_wrapped
xray_recorder.configure(sampling=False, service='ordering')

def query(tag):
    import sqlite3
    with xray_recorder.in_segment(tag):
        conn = sqlite3.connect(':memory:')
        conn.execute('select 1').fetchall()
        conn.close()

def report(**extra):
    import sqlite3
    state = {'sqlite_at_start': SQLITE_AT_START, 'wrapped': is_wrapped(sqlite3, 'connect'),
             'patched': sorted(patcher._PATCHED_MODULES), 'pending': sorted(patcher._PENDING)}
    state.update(extra)
    print(json.dumps(state))
'''


def run_script(body: str, udp_sink, cwd=None, env_extra=None):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(ROOT)] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    env['AWS_XRAY_DAEMON_ADDRESS'] = udp_sink.address
    env.pop('AWS_XRAY_SDK_ENABLED', None)
    env.update(env_extra or {})
    script = PRELUDE + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, '-c', script], cwd=str(cwd or ROOT), env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def subsegments_by_segment(udp_sink, count):
    docs = udp_sink.wait_for(count)
    assert len(docs) == count, docs
    return {doc['name']: [e['name'] for e, _ in walk(doc)][1:] for doc in docs}


def test_patch_before_import_defers_until_import(udp_sink):
    state, _ = run_script('''
        patch(['sqlite3'])
        deferred = 'sqlite3' in sys.modules
        query('after-import')
        report(imported_by_patch=deferred)
    ''', udp_sink)
    assert state['sqlite_at_start'] is False
    assert state['imported_by_patch'] is False, 'patch() must not import the library itself'
    assert state['wrapped'] is True and state['patched'] == ['sqlite3'] and state['pending'] == []
    assert subsegments_by_segment(udp_sink, 1) == {'after-import': [':memory:']}


def test_import_before_patch_gives_the_same_result(udp_sink):
    state, _ = run_script('''
        import sqlite3
        query('before-patch')
        patch(['sqlite3'])
        query('after-patch')
        report()
    ''', udp_sink)
    assert state['wrapped'] is True and state['patched'] == ['sqlite3']
    assert subsegments_by_segment(udp_sink, 2) == {'before-patch': [], 'after-patch': [':memory:']}


def test_patch_twice_before_and_after_import_records_once(udp_sink):
    state, _ = run_script('''
        patch(['sqlite3'])
        patch(['sqlite3'])
        import sqlite3
        patch(['sqlite3'])
        patch_all()
        query('twice')
        report(layers=type(sqlite3.connect.__wrapped__).__name__)
    ''', udp_sink)
    assert state['layers'] == 'builtin_function_or_method'
    assert subsegments_by_segment(udp_sink, 1) == {'twice': [':memory:']}


def test_unpatch_before_import_cancels_the_hook(udp_sink):
    state, _ = run_script('''
        patch(['sqlite3'])
        patcher.unpatch(['sqlite3'])
        query('cancelled')
        report()
    ''', udp_sink)
    assert state['wrapped'] is False and state['patched'] == [] and state['pending'] == []
    assert subsegments_by_segment(udp_sink, 1) == {'cancelled': []}


def test_unpatch_after_import_then_patch_again(udp_sink):
    state, _ = run_script('''
        patch(['sqlite3'])
        query('patched')
        patcher.unpatch()
        query('unpatched')
        patch(['sqlite3'])
        query('repatched')
        report()
    ''', udp_sink)
    assert state['wrapped'] is True
    assert subsegments_by_segment(udp_sink, 3) == {
        'patched': [':memory:'], 'unpatched': [], 'repatched': [':memory:']}


def test_patch_all_patches_sqlite3_and_not_httplib(udp_sink):
    state, stderr = run_script('''
        patch_all()
        query('all')
        import http.client
        report(httplib_wrapped=is_wrapped(http.client.HTTPConnection, '_send_request')
               or is_wrapped(http.client.HTTPConnection, 'request'))
    ''', udp_sink)
    assert 'sqlite3' in state['patched'] and 'httplib' not in state['patched']
    assert state['httplib_wrapped'] is False
    assert subsegments_by_segment(udp_sink, 1) == {'all': [':memory:']}
    assert 'Traceback' not in stderr


def test_disabled_sdk_patches_nothing(udp_sink):
    state, _ = run_script('''
        patch(['sqlite3'])
        patch_all(double_patch=True)
        report()
    ''', udp_sink, env_extra={'AWS_XRAY_SDK_ENABLED': 'false'})
    assert state['wrapped'] is False and state['patched'] == [] and state['pending'] == []


@pytest.mark.parametrize('order', ['patch-first', 'import-first'])
def test_local_package_either_order(udp_sink, tmp_path, order):
    pkg = tmp_path / 'shop'
    pkg.mkdir()
    (pkg / '__init__.py').write_text('')
    (pkg / 'cart.py').write_text(textwrap.dedent('''
        class Cart:
            def total(self, prices):
                return sum(prices)

        def checkout(prices):
            return Cart().total(prices)
    '''))
    body = '''
        import shop.cart
        patch(['shop'])
    ''' if order == 'import-first' else '''
        patch(['shop'])
        assert 'shop.cart' not in sys.modules
        import shop.cart
    '''
    state, _ = run_script(body + '''
        with xray_recorder.in_segment('local'):
            result = shop.cart.checkout([1, 2])
        report(result=result)
    ''', udp_sink, cwd=tmp_path)
    assert state['result'] == 3
    assert {'shop', 'shop.cart'} <= set(state['patched'])
    assert subsegments_by_segment(udp_sink, 1) == {'local': ['checkout', 'total']}
