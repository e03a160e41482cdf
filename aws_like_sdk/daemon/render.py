"""Plain-text trace trees for the terminal (``aws-like-sdk traces`` and the demo)."""
import datetime
import re
from typing import Any, Dict, List, Optional

from .assemble import walk

# Names come from the network: never let them move the cursor or recolour the terminal.
_CONTROL = re.compile(r'[\x00-\x1f\x7f-\x9f]')
_COLORS = {'FAULT': '31', 'ERROR': '33', 'THROTTLE': '35', 'IN PROGRESS': '36'}


def clean(text: Any, limit: int = 120) -> str:
    """``text`` as one printable line, control characters replaced, cut to ``limit``."""
    value = _CONTROL.sub('?', str(text))
    return value if len(value) <= limit else value[:limit - 1] + '…'


def format_duration(seconds: Optional[float]) -> str:
    """``12.3 ms`` / ``1.25 s``; ``?`` when unknown."""
    if seconds is None:
        return '?'
    return '%.1f ms' % (seconds * 1000) if seconds < 1 else '%.2f s' % seconds


def _flags(item: Dict[str, Any], color: bool) -> str:
    names = [name for name, key in (('FAULT', 'fault'), ('ERROR', 'error'), ('THROTTLE', 'throttle'),
                                    ('IN PROGRESS', 'in_progress')) if item.get(key)]
    if color:
        return ' '.join('\x1b[%sm%s\x1b[0m' % (_COLORS[n], n) for n in names)
    return ' '.join(names)


def _node_line(node: Dict[str, Any], color: bool) -> str:
    start, end = node.get('start_time'), node.get('end_time')
    parts = [clean(node['name'], 80), format_duration(end - start if start is not None and end is not None
                                                       else None)]
    http = node.get('http') if isinstance(node.get('http'), dict) else {}
    request = http.get('request') if isinstance(http.get('request'), dict) else {}
    response = http.get('response') if isinstance(http.get('response'), dict) else {}
    if request.get('method') or request.get('url'):
        parts.append(clean('%s %s' % (request.get('method', ''), request.get('url', '')), 80).strip())
    if response.get('status') is not None:
        parts.append(clean(response['status'], 5))
    sql = node.get('sql')
    if isinstance(sql, dict) and sql.get('sanitized_query'):
        parts.append('sql: ' + clean(sql['sanitized_query'], 60))
    if node['type'] == 'segment':
        parts.insert(1, '(segment)')
    flags = _flags(node, color)
    if flags:
        parts.append(flags)
    return '  '.join(parts)


def summary_line(summary: Dict[str, Any], color: bool = False) -> str:
    """One header line for a trace: time, id, name, request, status, duration, flags."""
    when = datetime.datetime.fromtimestamp(summary['start_time']).strftime('%Y-%m-%d %H:%M:%S') \
        if summary.get('start_time') else '?'
    parts = [when, summary['trace_id'], clean(summary.get('name') or '?', 60)]
    if summary.get('method') or summary.get('url'):
        parts.append(clean('%s %s' % (summary.get('method') or '', summary.get('url') or ''), 80).strip())
    if summary.get('status') is not None:
        parts.append(str(summary['status']))
    parts.append(format_duration(summary.get('duration')))
    flags = _flags(summary, color)
    if flags:
        parts.append(flags)
    return '  '.join(parts)


def tree_lines(roots: List[Dict[str, Any]], color: bool = False) -> List[str]:
    """The trace tree with box-drawing guides, one line per entity."""
    lines: List[str] = []
    guides: List[bool] = []  # per depth: does the ancestor at that depth have later siblings?
    for node, depth, parent in walk(roots):
        siblings = parent['children'] if parent is not None else roots
        is_last = siblings[-1] is node
        del guides[depth:]
        prefix = ''.join('   ' if done else '│  ' for done in guides[1:]) if depth else ''
        connector = ('└─ ' if is_last else '├─ ') if depth else ''
        lines.append(prefix + connector + _node_line(node, color))
        guides.append(is_last)
    return lines


def render_trace(summary: Dict[str, Any], roots: List[Dict[str, Any]], color: bool = False) -> str:
    """Header line plus tree, ready to print."""
    return '\n'.join([summary_line(summary, color)] + ['  ' + line for line in tree_lines(roots, color)])
