"""Small helpers for reading what the Django tests' UDP sink received."""
import copy
from typing import Any, Dict, List

from tests.support.udp_sink import assemble, walk


def segments(sink: Any, count: int = 1, timeout: float = 5.0) -> List[Dict[str, Any]]:
    """Wait for ``count`` documents and return the segments, streamed pieces re-attached."""
    docs = sink.wait_for(count, timeout=timeout)
    return list(assemble(copy.deepcopy(docs)).values())


def only_segment(sink: Any, timeout: float = 5.0) -> Dict[str, Any]:
    """The one segment the test produced (after the sink went quiet)."""
    sink.wait_for(1, timeout=timeout)
    trees = list(assemble(copy.deepcopy(sink.settle(quiet=0.05))).values())
    assert len(trees) == 1, trees
    return trees[0]


def subsegments(tree: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Every subsegment of ``tree``, depth first."""
    return [entity for entity, parent in walk(tree) if parent is not None]
