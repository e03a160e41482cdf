"""The service map: nodes by segment name, edges with call counts, latency and error rate."""
from typing import Any, Dict, Iterable, List, Tuple

from .assemble import walk

CLIENT = 'client'


def _duration(node: Dict[str, Any]) -> float:
    start, end = node.get('start_time'), node.get('end_time')
    return max(0.0, end - start) if start is not None and end is not None else 0.0


def _failed(node: Dict[str, Any]) -> bool:
    return bool(node.get('error') or node.get('fault') or node.get('throttle'))


def _is_remote(node: Dict[str, Any]) -> bool:
    return node['type'] == 'subsegment' and (
        node.get('namespace') in ('remote', 'aws') or isinstance(node.get('sql'), dict))


class ServiceMap:
    """Accumulates calls from assembled traces; :meth:`to_dict` gives the JSON form."""

    def __init__(self) -> None:
        self._nodes: Dict[str, Dict[str, Any]] = {}
        self._edges: Dict[Tuple[str, str], Dict[str, Any]] = {}

    def _node(self, name: str, kind: str) -> None:
        node = self._nodes.setdefault(name, {'name': name, 'type': kind, 'calls': 0, 'errors': 0,
                                             'total_time': 0.0})
        if kind == 'service':
            node['type'] = kind  # a traced service beats a remote guess by the same name

    def _call(self, source: str, target: str, target_kind: str, latency: float, failed: bool) -> None:
        self._node(target, target_kind)
        target_node = self._nodes[target]
        target_node['calls'] += 1
        target_node['errors'] += int(failed)
        target_node['total_time'] += latency
        edge = self._edges.setdefault((source, target), {'source': source, 'target': target,
                                                          'calls': 0, 'errors': 0, 'total_time': 0.0})
        edge['calls'] += 1
        edge['errors'] += int(failed)
        edge['total_time'] += latency

    def add_trace(self, roots: Iterable[Dict[str, Any]]) -> None:
        """Count the calls in one assembled trace (see :func:`assemble.assemble`)."""
        self._node(CLIENT, 'client')
        for node, _depth, parent in walk(list(roots)):
            if node['type'] == 'segment':
                source = parent['segment'] if parent is not None else CLIENT
                self._call(source, node['name'], 'service', _duration(node), _failed(node))
            elif _is_remote(node) and not any(c['type'] == 'segment' for c in node['children']):
                # A downstream call with no traced callee: the callee shows as a remote node.
                kind = 'database' if isinstance(node.get('sql'), dict) else 'remote'
                self._call(node['segment'], node['name'], kind, _duration(node), _failed(node))

    def to_dict(self) -> Dict[str, List[Dict[str, Any]]]:
        """``{"nodes": [...], "edges": [...]}`` with averages in seconds and rates in 0..1."""
        def finish(item: Dict[str, Any]) -> Dict[str, Any]:
            out = dict(item)
            calls = out['calls']
            total = out.pop('total_time')
            out['avg_latency'] = total / calls if calls else 0.0
            out['error_rate'] = out['errors'] / calls if calls else 0.0
            return out
        return {'nodes': [finish(n) for n in sorted(self._nodes.values(), key=lambda n: n['name'])],
                'edges': [finish(e) for e in sorted(self._edges.values(),
                                                    key=lambda e: (e['source'], e['target']))]}
