"""The SQLite store: upserts in any order, summaries, filters, retention, hostile text."""
import json
import sqlite3

import pytest

from aws_like_sdk.daemon.documents import parse_document
from aws_like_sdk.daemon.store import Store, TraceFilter

from .conftest import new_id, new_trace_id, segment


def parsed(doc):
    return parse_document(json.dumps(doc).encode())


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / 'sub' / 'traces.sqlite3', max_traces=5)
    yield s
    s.close()


def test_wal_mode_and_created_directory(store, tmp_path):
    assert (tmp_path / 'sub' / 'traces.sqlite3').exists()
    conn = sqlite3.connect(store.path)
    assert conn.execute('PRAGMA journal_mode').fetchone()[0] == 'wal'


def test_complete_replaces_in_progress_in_either_order(store):
    done = segment('api')
    running = dict(done, in_progress=True)
    del running['end_time']
    store.write_batch([parsed(done)])
    store.write_batch([parsed(running)])      # late in-progress copy must not win
    summary = store.get_summary(done['trace_id'])
    assert summary['in_progress'] == 0 and summary['documents'] == 1
    other = segment('api')
    running = dict(other, in_progress=True)
    del running['end_time']
    store.write_batch([parsed(running)])
    assert store.get_summary(other['trace_id'])['in_progress'] == 1
    store.write_batch([parsed(other)])
    assert store.get_summary(other['trace_id'])['in_progress'] == 0


def test_streamed_subsegment_before_its_segment(store):
    root = segment('front', http={'request': {'method': 'POST', 'url': 'http://h/x'}, 'response': {'status': 503}},
                   fault=True)
    child = {'name': 'work', 'id': new_id(), 'trace_id': root['trace_id'], 'parent_id': root['id'],
             'type': 'subsegment', 'start_time': root['start_time'] + 0.01, 'end_time': root['end_time'] + 1}
    store.write_batch([parsed(child)])
    early = store.get_summary(root['trace_id'])
    assert early['name'] == 'work'  # listed before the root arrives
    store.write_batch([parsed(root)])
    summary = store.get_summary(root['trace_id'])
    assert (summary['name'], summary['method'], summary['status'], summary['fault']) == ('front', 'POST', 503, 1)
    assert summary['documents'] == 2
    assert summary['duration'] == pytest.approx(child['end_time'] - root['start_time'])


def test_filters(store):
    a = segment('orders', annotations={'customer': 'c-1', 'vip': True},
                http={'response': {'status': 500}}, fault=True)
    b = segment('orders', http={'response': {'status': 404}}, error=True)
    c = segment('billing', end_time=segment()['start_time'] + 2.0)
    store.write_batch([parsed(a), parsed(b), parsed(c)])

    def ids(**kw):
        return {t['trace_id'] for t in store.list_traces(TraceFilter(**kw))}
    assert ids(service='orders') == {a['trace_id'], b['trace_id']}
    assert ids(status='5xx') == {a['trace_id']}
    assert ids(status='404') == {b['trace_id']}
    assert ids(flag='fault') == {a['trace_id']}
    assert ids(flag='error') == {b['trace_id']}
    assert ids(flag='ok') == {c['trace_id']}
    assert ids(annotation='customer=c-1') == {a['trace_id']}
    assert ids(annotation='vip=true') == {a['trace_id']}
    assert ids(annotation='customer') == {a['trace_id']}
    assert ids(min_duration=1.0) == {c['trace_id']}
    assert ids(limit=1) == {c['trace_id']}  # newest start first
    with pytest.raises(ValueError):
        store.list_traces(TraceFilter(flag='bogus'))


def test_sql_metacharacters_are_data(store):
    evil = "x' OR 1=1; DROP TABLE traces; --"
    doc = segment(evil, annotations={'q': evil})
    store.write_batch([parsed(doc)])
    assert [t['name'] for t in store.list_traces(TraceFilter(service=evil))] == [evil]
    assert store.list_traces(TraceFilter(annotation='q=' + evil))[0]['trace_id'] == doc['trace_id']
    assert store.list_traces(TraceFilter(service="' OR '1'='1")) == []
    assert store.counts()[0] == 1


def test_retention_keeps_newest(store):
    docs = [segment('s%d' % i, trace_id=new_trace_id(), start_time=1000.0 + i, end_time=1000.5 + i)
            for i in range(8)]
    store.write_batch([parsed(d) for d in docs])
    assert store.enforce_retention() == 3
    kept = {t['name'] for t in store.list_traces(TraceFilter())}
    assert kept == {'s3', 's4', 's5', 's6', 's7'}
    assert store.counts() == (5, 5)
    assert store.get_documents(docs[0]['trace_id']) == []


def test_retention_by_age(tmp_path):
    store = Store(tmp_path / 'db', max_age=0.0)
    store.write_batch([parsed(segment())], received=1.0)
    assert store.enforce_retention() == 1
    store.close()


def test_after_seq_cursor(store):
    first = segment()
    store.write_batch([parsed(first)])
    cursor = store.last_seq()
    second = segment()
    store.write_batch([parsed(second)])
    assert [t['trace_id'] for t in store.list_traces(TraceFilter(after_seq=cursor))] == [second['trace_id']]
