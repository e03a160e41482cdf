"""Cost of a traced sqlite3 ``cursor.execute``: plain sqlite3, aws_like_sdk, and aws-xray-sdk (if
installed), each recorder sampling everything inside one open segment and emitting nothing.

``patch(['sqlite3'])`` itself is not measured: it runs once per process.

Run from the repository root: PYTHONPATH=. python benchmarks/dbapi_bench.py
"""
import logging
import sqlite3
import timeit

N = 20_000
PER_SEGMENT = 50  # queries per segment, so a segment never holds an unrealistic number of children
QUERY = "select name, price from items where name = 'apple' and price > 2"


class NullEmitter:
    """Drops documents, so the numbers are the instrumentation's own cost, not the socket's."""

    def send_entity(self, entity) -> None:
        pass

    def set_daemon_address(self, address) -> None:
        pass


def make_db():
    conn = sqlite3.connect(':memory:')
    conn.execute('create table items (name text, price integer)')
    conn.executemany('insert into items values (?, ?)', [('apple', 3), ('pear', 4)])
    return conn


def report(name: str, per_call_ns: float, baseline: float) -> None:
    print('%-44s %9.0f ns/execute   (+%.0f ns over plain)' % (name, per_call_ns, per_call_ns - baseline))


def bench(func) -> float:
    return min(timeit.repeat(func, number=N, repeat=5)) / N * 1e9


def bench_in_segments(recorder, func) -> float:
    """Per-call cost of ``func`` run PER_SEGMENT times inside each segment (segment cost included)."""
    def batch():
        recorder.begin_segment('bench')
        for _ in range(PER_SEGMENT):
            func()
        recorder.end_segment()
    number = N // PER_SEGMENT
    return min(timeit.repeat(batch, number=number, repeat=5)) / (number * PER_SEGMENT) * 1e9


def main() -> None:
    logging.disable(logging.CRITICAL)  # upstream logs a warning per untraced call
    plain = make_db().cursor()
    baseline = bench(lambda: plain.execute(QUERY))
    print('%-44s %9.0f ns/execute' % ('plain sqlite3', baseline))

    from aws_like_sdk.core.async_recorder import AsyncAWSXRayRecorder
    from aws_like_sdk.core.context import Context
    from aws_like_sdk.core import xray_recorder
    from aws_like_sdk.ext.dbapi2 import XRayTracedConn
    from aws_like_sdk.core.streaming.default_streaming import DefaultStreaming
    xray_recorder.configure(sampling=False, emitter=NullEmitter(), context=Context(), service='bench',
                            streaming=DefaultStreaming(10 ** 9))
    conn = XRayTracedConn(make_db(), {'name': ':memory:', 'database_version': sqlite3.sqlite_version})
    for stream_sql in (True, False):
        xray_recorder.stream_sql = stream_sql
        cursor = conn.cursor()
        cost = bench_in_segments(xray_recorder, lambda: cursor.execute(QUERY))
        report('aws_like_sdk (stream_sql=%s)' % stream_sql, cost, baseline)
    xray_recorder.begin_segment('bench')
    cursor = conn.cursor()
    xray_recorder.clear_trace_entities()
    report('aws_like_sdk, no open segment', bench(lambda: cursor.execute(QUERY)), baseline)
    del AsyncAWSXRayRecorder

    try:
        from aws_xray_sdk.core import xray_recorder as upstream
        from aws_xray_sdk.core.context import Context as UpstreamContext
        from aws_xray_sdk.core.streaming.default_streaming import DefaultStreaming as UpstreamStreaming
        from aws_xray_sdk.ext.dbapi2 import XRayTracedConn as UpstreamConn
    except ImportError:
        print('aws-xray-sdk not installed: no comparison')
        return
    upstream.configure(sampling=False, emitter=NullEmitter(), context=UpstreamContext(), service='bench',
                       streaming=UpstreamStreaming(10 ** 9), context_missing='IGNORE_ERROR')
    up_conn = UpstreamConn(make_db(), {'name': ':memory:', 'database_version': sqlite3.sqlite_version})
    up_cursor = up_conn.cursor()
    report('aws-xray-sdk 2.15 (no query text)', bench_in_segments(upstream, lambda: up_cursor.execute(QUERY)),
           baseline)
    upstream.clear_trace_entities()
    report('aws-xray-sdk 2.15, no open segment', bench(lambda: up_cursor.execute(QUERY)), baseline)


if __name__ == '__main__':
    main()
