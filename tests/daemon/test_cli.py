"""``aws-like-sdk traces`` and ``daemon`` as a user runs them."""
import os
import subprocess
import sys
import time

import pytest

from aws_like_sdk.daemon.render import clean

from .conftest import new_id, segment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(*args, timeout=30, env=None):
    return subprocess.run([sys.executable, '-m', 'aws_like_sdk.cli'] + list(args), capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=dict(os.environ, **(env or {})))


def _trace(daemon, name):
    root = segment(name, http={'request': {'method': 'GET', 'url': 'http://h/x'}, 'response': {'status': 200}},
                   subsegments=[{'name': 'step\x1b[31m', 'id': new_id(), 'start_time': time.time() - 0.02,
                                 'end_time': time.time() - 0.01}])
    daemon.send(root)
    daemon.wait_trace(root['trace_id'])
    return root


def test_traces_prints_trees(daemon):
    root = _trace(daemon, 'cli-tree')
    tcp = '%s:%d' % daemon.tcp
    result = cli('traces', '--tcp', tcp, '--limit', '50')
    assert result.returncode == 0, result.stderr
    assert root['trace_id'] in result.stdout and '└─ step?[31m' in result.stdout
    assert '\x1b' not in result.stdout   # terminal escapes from documents are neutralised
    single = cli('traces', '--tcp', tcp, '--trace', root['trace_id'])
    assert single.stdout.count(root['trace_id']) == 1 and 'GET http://h/x' in single.stdout
    assert cli('traces', '--tcp', tcp, '--trace', '1-00000000-000000000000000000000000').returncode == 1
    # AWS_XRAY_DAEMON_ADDRESS is honoured, as by the SDK
    env_run = cli('traces', '--service', 'cli-tree', env={'AWS_XRAY_DAEMON_ADDRESS': tcp})
    assert root['trace_id'] in env_run.stdout


def test_traces_reads_a_store_file_directly(daemon):
    root = _trace(daemon, 'cli-db')
    result = cli('traces', '--db', daemon.db, '--service', 'cli-db', '--json')
    assert result.returncode == 0 and root['trace_id'] in result.stdout
    assert cli('traces', '--db', '/nonexistent/x.db').returncode == 1


def test_traces_follow(daemon):
    proc = subprocess.Popen([sys.executable, '-m', 'aws_like_sdk.cli', 'traces', '--tcp', '%s:%d' % daemon.tcp,
                             '--follow', '--limit', '1', '--interval', '0.2', '--no-color'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        time.sleep(1.0)
        root = _trace(daemon, 'cli-follow')
        time.sleep(2.5)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert root['trace_id'] in out and 'cli-follow' in out


def test_traces_without_daemon_says_so():
    result = cli('traces', '--tcp', '127.0.0.1:9')
    assert result.returncode == 1 and 'no daemon' in result.stderr


def test_daemon_refuses_non_loopback_without_flag(tmp_path):
    result = cli('daemon', '--udp', '0.0.0.0:0', '--tcp', '127.0.0.1:0', '--db', str(tmp_path / 'd.db'))
    assert result.returncode == 2 and '--allow-remote' in result.stderr


def test_daemon_rejects_bad_rules_file(tmp_path):
    rules = tmp_path / 'rules.json'
    rules.write_text('{"version": 9}')
    result = cli('daemon', '--udp', '127.0.0.1:0', '--tcp', '127.0.0.1:0', '--db', str(tmp_path / 'd.db'),
                 '--sampling-rules', str(rules))
    assert result.returncode == 2 and 'sampling rules' in result.stderr


def test_daemon_sigterm_stops_cleanly(start_daemon):
    daemon = start_daemon()
    daemon.send(segment('bye'))
    daemon.wait_stored(1)
    assert daemon.stop() == 0
    assert 'stored 1' in daemon.log()


def test_clean():
    assert clean('a\x1b[2Jb\nc') == 'a?[2Jb?c'
    assert len(clean('x' * 500, 10)) == 10


@pytest.mark.parametrize('args', [['--version'], ['daemon', '--help'], ['traces', '--help']])
def test_help(args):
    assert cli(*args).returncode == 0
