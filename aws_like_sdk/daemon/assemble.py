"""Assemble a trace tree from its documents, whatever order they arrived in.

Segments, embedded subsegments and independent (streamed) subsegments all become
nodes; each document is hung under the node whose id is its ``parent_id``. A segment
called by another service hangs under the caller's subsegment, as in the X-Ray console.
"""
from typing import Any, Dict, List, Optional

from .documents import iter_entities

# Keys copied from an entity into its node as-is; everything else stays in "raw".
_DETAIL_KEYS = ('http', 'sql', 'aws', 'annotations', 'metadata', 'cause', 'namespace', 'origin',
                'user', 'service', 'precursor_ids')


def _number(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _node(entity: Dict[str, Any], kind: str, segment_name: str) -> Dict[str, Any]:
    node: Dict[str, Any] = {
        'id': str(entity.get('id', '')).lower(),
        'name': str(entity.get('name', '')),
        'type': kind,
        'segment': segment_name,
        'start_time': _number(entity.get('start_time')),
        'end_time': _number(entity.get('end_time')),
        'in_progress': entity.get('in_progress') is True,
        'error': entity.get('error') is True,
        'fault': entity.get('fault') is True,
        'throttle': entity.get('throttle') is True,
        'children': [],
    }
    for key in _DETAIL_KEYS:
        if key in entity:
            node[key] = entity[key]
    return node


def _build(document: Dict[str, Any], index: Dict[str, Dict[str, Any]],
           up: Dict[int, Dict[str, Any]]) -> Dict[str, Any]:
    """Turn one document and its embedded subsegments into nodes, registering each id."""
    is_segment = document.get('type') != 'subsegment'
    segment_name = str(document.get('name', '')) if is_segment else ''
    top = _node(document, 'segment' if is_segment else 'subsegment', segment_name)
    built = {id(document): top}
    for entity in iter_entities(document):
        node = built[id(entity)]
        index.setdefault(node['id'], node)
        children = entity.get('subsegments')
        if not isinstance(children, list):
            continue
        for child in children:
            if isinstance(child, dict):
                child_node = _node(child, 'subsegment', segment_name)
                built[id(child)] = child_node
                up[id(child_node)] = node
                node['children'].append(child_node)
    return top


def assemble(documents: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Build the trace tree.

    Args:
        documents: every stored document of one trace (parsed JSON objects).

    Returns:
        The root nodes (normally one), children sorted by start time. Each node has
        ``id, name, type, segment, start_time, end_time, in_progress, error, fault,
        throttle, children`` plus any of ``http, sql, aws, annotations, metadata, cause,
        namespace, origin, user, service, precursor_ids`` present in the document.
    """
    index: Dict[str, Dict[str, Any]] = {}
    up: Dict[int, Dict[str, Any]] = {}
    tops = [(document.get('parent_id'), _build(document, index, up)) for document in documents]
    roots = []
    for parent_id, node in tops:
        parent = index.get(str(parent_id).lower()) if parent_id else None
        # Refuse to attach under a descendant of itself (hostile or broken parent ids).
        if parent is None or _is_ancestor(node, parent, up):
            roots.append(node)
        else:
            up[id(node)] = parent
            parent['children'].append(node)
    _fill_segment_names(roots)
    _sort(roots)
    return roots


def _is_ancestor(candidate: Dict[str, Any], node: Optional[Dict[str, Any]],
                 up: Dict[int, Dict[str, Any]]) -> bool:
    """True if ``candidate`` is ``node`` or lies above it (the tree stays acyclic by induction)."""
    while node is not None:
        if node is candidate:
            return True
        node = up.get(id(node))
    return False


def _fill_segment_names(roots: List[Dict[str, Any]]) -> None:
    # Streamed subsegments do not carry their segment's name; inherit it from above.
    stack = [(root, root['segment'] or root['name']) for root in roots]
    while stack:
        node, segment_name = stack.pop()
        if node['type'] == 'segment':
            segment_name = node['name']
        node['segment'] = segment_name
        stack.extend((child, segment_name) for child in node['children'])


def _sort(roots: List[Dict[str, Any]]) -> None:
    roots.sort(key=lambda n: n['start_time'] or 0)
    stack = list(roots)
    while stack:
        node = stack.pop()
        node['children'].sort(key=lambda n: n['start_time'] or 0)
        stack.extend(node['children'])


def walk(roots: List[Dict[str, Any]]):
    """Yield ``(node, depth, parent)`` depth first, in display order."""
    stack = [(root, 0, None) for root in reversed(roots)]
    while stack:
        node, depth, parent = stack.pop()
        yield node, depth, parent
        stack.extend((child, depth + 1, node) for child in reversed(node['children']))
