"""Helpers for the HTTP-client tests: find the recorded subsegments."""
from tests.support.udp_sink import assemble, walk


def subsegments_of(udp_sink, segments=1, timeout=5.0):
    """Wait for ``segments`` segment documents and return ``(segment, [subsegments below it])``."""
    udp_sink.wait_for(segments, timeout)
    trees = list(assemble(udp_sink.settle(quiet=0.05)).values())
    assert len(trees) == segments, trees
    tree = trees[-1]
    return tree, [entity for entity, parent in walk(tree) if parent is not None]


def trace_header_for(subsegment):
    return 'Root=%s;Parent=%s;Sampled=1' % (subsegment['trace_id'], subsegment['id'])
