"""The viewer in real headless Chromium: trace list, waterfall, service map, hostile text."""
import html
import re

import pytest

from .conftest import chromium_path, dump_dom, new_id, segment

pytestmark = pytest.mark.skipif(chromium_path() is None, reason='chromium is not installed')

XSS_NAME = '<img src=x onerror="document.title=\'pwned\'">svc'
XSS_VALUE = '<script>document.title="pwned"</script>'


@pytest.fixture(scope='module')
def hostile_trace(daemon):
    root = segment(XSS_NAME, annotations={'who': XSS_VALUE, 'tenant': 'acme'},
                   http={'request': {'method': 'GET', 'url': 'http://h/"><svg onload=alert(1)>'},
                         'response': {'status': 500}}, fault=True,
                   metadata={'default': {'html': '<b>bold</b>'}},
                   cause={'exceptions': [{'id': new_id(), 'type': 'KeyError', 'message': '<i>boom</i>',
                                          'stack': [{'path': 'app.py', 'line': 10, 'label': 'handler'}]}]},
                   subsegments=[{'name': 'query', 'id': new_id(), 'start_time': 0, 'end_time': 0,
                                 'sql': {'sanitized_query': "SELECT * FROM t WHERE x = '; DROP TABLE t; --"}}])
    root['subsegments'][0]['start_time'] = root['start_time'] + 0.01
    root['subsegments'][0]['end_time'] = root['start_time'] + 0.02
    daemon.send(root)
    daemon.wait_trace(root['trace_id'])
    return root


def _assert_not_executed(dom):
    # Had a payload run, the title would be exactly "pwned" (as text it may contain the word).
    assert re.search(r'<title>(.*?)</title>', dom, re.S).group(1).strip() != 'pwned'
    assert '<img src="x"' not in dom and '<script>document' not in dom and '<svg onload' not in dom
    assert '<b>bold</b>' not in dom


def test_trace_list_renders_escaped_rows(daemon, hostile_trace):
    dom = dump_dom(daemon.base + '/?service=' + '%3Cimg')  # unknown service first: filter from the URL
    assert 'data-loaded="0"' in dom
    dom = dump_dom(daemon.base + '/')
    assert hostile_trace['trace_id'] in dom
    assert html.escape(XSS_NAME, quote=False) in dom
    assert '<span class="badge fault">fault</span>' in dom
    _assert_not_executed(dom)


def test_waterfall_and_details(daemon, hostile_trace):
    dom = dump_dom(daemon.base + '/traces/' + hostile_trace['trace_id'])
    assert 'data-rendered="ok"' in dom and 'data-rows="2"' in dom
    assert dom.count('class="bar ') == 2 and 'class="bar fault"' in dom
    assert html.escape(XSS_VALUE, quote=False) in dom          # annotation shown as text
    assert html.escape('<i>boom</i>', quote=False) in dom       # exception message
    assert 'app.py:10' in dom
    _assert_not_executed(dom)


def test_unknown_trace_page_shows_error(daemon):
    dom = dump_dom(daemon.base + '/traces/1-00000000-000000000000000000000000')
    assert 'no such trace' in dom and 'data-rendered="error"' in dom


def test_service_map(daemon, hostile_trace):
    dom = dump_dom(daemon.base + '/map')
    assert 'data-rendered="ok"' in dom
    assert '<circle' in dom and 'class="edge' in dom
    assert html.escape(XSS_NAME, quote=False)[:20] in dom
    _assert_not_executed(dom)
