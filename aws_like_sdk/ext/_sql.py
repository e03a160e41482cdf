"""The ``sql`` block shared by every database integration (dbapi2, sqlite3, Django, SQLAlchemy).

Query text is sanitized by default: string, numeric and hex literals become ``?`` and comments are
removed, so business data in literals never reaches the trace. Parameters are never recorded.
``stream_sql`` on the recorder decides: False records no text, True the sanitized text, and
``'raw'`` (explicit opt-in) the text as written.
"""
import re
from typing import Any, Dict, Optional
from urllib.parse import urlsplit, urlunsplit

_LITERALS = re.compile(r"""
      (?P<comment>--[^\n]*|/\*.*?\*/)
    | (?P<string>[NnEeBb]?'(?:[^']|'')*'?)
    | (?P<dollar>\$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$)
    | (?P<hex>\b[Xx]'[0-9A-Fa-f]*'|\b0[xX][0-9A-Fa-f]+\b)
    | (?P<number>(?<![\w$.:?@])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w]))
""", re.VERBOSE | re.DOTALL)


def _replace(match: 're.Match[str]') -> str:
    return '' if match.lastgroup == 'comment' else '?'


def sanitize_query(query: Any) -> Optional[str]:
    """Replace literals in ``query`` with ``?`` and drop comments. Non-string queries give None."""
    if isinstance(query, bytes):
        query = query.decode('utf-8', errors='replace')
    if not isinstance(query, str):
        return None
    return _LITERALS.sub(_replace, query).strip()


def strip_url_credentials(url: Optional[str]) -> Optional[str]:
    """Return ``url`` without password, query string or fragment (``scheme://user@host:port/db``)."""
    if not url:
        return url
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return None
    netloc = parts.hostname or ''
    if ':' in netloc:  # urlsplit drops the brackets of an IPv6 literal; the URL needs them back
        netloc = '[%s]' % netloc
    if parts.username:
        netloc = '%s@%s' % (parts.username, netloc)
    try:
        port = parts.port
    except ValueError:
        port = None
    if port:
        netloc = '%s:%d' % (netloc, port)
    if parts.scheme and str(url).startswith(parts.scheme + '://'):
        # urlunsplit drops an empty authority ('sqlite:///db' -> 'sqlite:/db') for unknown schemes.
        return '%s://%s%s' % (parts.scheme, netloc, parts.path)
    return urlunsplit((parts.scheme, netloc, parts.path, '', ''))


def query_for_trace(query: Any, stream_sql: Any) -> Optional[str]:
    """The query text to record under the recorder's ``stream_sql`` setting."""
    if not stream_sql:
        return None
    if stream_sql == 'raw':
        return query.decode('utf-8', errors='replace') if isinstance(query, bytes) else (
            query if isinstance(query, str) else None)
    return sanitize_query(query)


def build_sql_meta(database_type: Optional[str] = None, url: Optional[str] = None, user: Optional[str] = None,
                   database_version: Optional[str] = None, driver_version: Optional[str] = None,
                   query: Any = None, stream_sql: Any = True) -> Dict[str, Any]:
    """Assemble an ``sql`` block, leaving out empty fields and sanitizing the query per ``stream_sql``."""
    meta: Dict[str, Any] = {}
    if url:
        clean = strip_url_credentials(url)
        if clean:
            meta['url'] = clean
    if user:
        meta['user'] = str(user)
    if database_type:
        meta['database_type'] = str(database_type)
    if database_version:
        meta['database_version'] = str(database_version)
    if driver_version:
        meta['driver_version'] = str(driver_version)
    text = query_for_trace(query, stream_sql) if query is not None else None
    if text:
        meta['sanitized_query'] = text
    return meta
