"""Trace trees from documents in any order."""
import itertools

from aws_like_sdk.daemon.assemble import assemble, walk

from .conftest import new_id, new_trace_id


def _docs():
    trace = new_trace_id()
    root, call, inner, streamed = new_id(), new_id(), new_id(), new_id()
    front = {'name': 'front', 'id': root, 'trace_id': trace, 'start_time': 1.0, 'end_time': 2.0,
             'subsegments': [{'name': 'call-back', 'id': call, 'start_time': 1.1, 'end_time': 1.8,
                              'namespace': 'remote',
                              'subsegments': [{'name': 'inner', 'id': inner, 'start_time': 1.2, 'end_time': 1.3}]}]}
    back = {'name': 'back', 'id': new_id(), 'trace_id': trace, 'parent_id': call, 'start_time': 1.15,
            'end_time': 1.7}
    stream = {'name': 'streamed', 'id': streamed, 'trace_id': trace, 'parent_id': inner, 'type': 'subsegment',
              'start_time': 1.21, 'end_time': 1.25}
    return [front, back, stream]


def test_any_order_gives_the_same_tree():
    docs = _docs()
    shapes = set()
    for order in itertools.permutations(docs):
        roots = assemble(list(order))
        shapes.add(tuple((n['name'], d, n['segment']) for n, d, _ in walk(roots)))
    assert shapes == {(('front', 0, 'front'), ('call-back', 1, 'front'), ('back', 2, 'back'),
                       ('inner', 2, 'front'), ('streamed', 3, 'front'))}


def test_cycles_and_orphans_do_not_loop():
    trace = new_trace_id()
    a, b = new_id(), new_id()
    docs = [{'name': 'a', 'id': a, 'trace_id': trace, 'parent_id': b, 'type': 'subsegment', 'start_time': 1, 'end_time': 2},
            {'name': 'b', 'id': b, 'trace_id': trace, 'parent_id': a, 'type': 'subsegment', 'start_time': 1, 'end_time': 2},
            {'name': 'self', 'id': 'c' * 16, 'trace_id': trace, 'parent_id': 'c' * 16, 'start_time': 1, 'end_time': 2},
            {'name': 'orphan', 'id': new_id(), 'trace_id': trace, 'parent_id': new_id(), 'start_time': 3, 'end_time': 4}]
    roots = assemble(docs)
    names = [n['name'] for n, _, _ in walk(roots)]
    assert sorted(names) == ['a', 'b', 'orphan', 'self']


def test_deep_nesting_is_iterative():
    node = {'name': 'leaf', 'id': new_id(), 'start_time': 1, 'end_time': 2}
    for _ in range(5000):
        node = {'name': 'n', 'id': new_id(), 'start_time': 1, 'end_time': 2, 'subsegments': [node]}
    node.update(trace_id=new_trace_id())
    assert sum(1 for _ in walk(assemble([node]))) == 5001
