"""Helpers for the async/threading tests: rebuild what reached the UDP sink into trees."""
from typing import Any, Dict, List, Optional

import pytest

from tests.support.udp_sink import assemble, walk


class Trees:
    """Documents received by the sink, reassembled; counts every piece exactly once."""

    def __init__(self, documents: List[Dict[str, Any]]) -> None:
        self.documents = documents
        ids: List[str] = []
        for doc in documents:
            ids.extend(entity['id'] for entity, _ in walk(doc))
        self.emitted_ids = ids
        self.by_segment = assemble([dict(d) for d in documents])

    def only(self) -> Dict[str, Any]:
        assert len(self.by_segment) == 1, [s['name'] for s in self.by_segment.values()]
        return next(iter(self.by_segment.values()))

    def named(self, name: str) -> Dict[str, Any]:
        found = [s for s in self.by_segment.values() if s['name'] == name]
        assert len(found) == 1, (name, [s['name'] for s in self.by_segment.values()])
        return found[0]


def children(entity: Dict[str, Any], name: Optional[str] = None) -> List[Dict[str, Any]]:
    """Direct subsegments of ``entity``, optionally only those called ``name``."""
    subs = entity.get('subsegments', [])
    return [s for s in subs if name is None or s['name'] == name]


@pytest.fixture(name='children')
def children_fixture():
    """The :func:`children` helper (this package's name is a keyword, so tests cannot import it)."""
    return children


@pytest.fixture
def collect(udp_sink, recorder):
    """``collect(n)``: wait for at least ``n`` documents, flush the recorder's emitter, let stragglers
    arrive, return Trees."""
    def _collect(count: int = 1, timeout: float = 5.0) -> Trees:
        udp_sink.wait_for(count, timeout)
        # After a burst the last partial batch may wait for the background sender's next look (up to
        # 0.2 s while traffic lasted), longer than the quiet spell below: hand it over now.
        assert recorder.emitter.flush(timeout)
        return Trees(udp_sink.settle(quiet=0.1, timeout=timeout))
    return _collect
