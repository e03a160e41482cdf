"""Read traces from a running daemon's JSON API, or straight from a store file."""
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Mapping, Optional

from . import api
from .address import Address, format_address
from .store import Store

# The daemon is local: an HTTP proxy from the environment must not be asked for it.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SourceError(RuntimeError):
    """The daemon could not be reached or answered with an error."""


class ApiSource:
    """Traces from the daemon listening on ``address`` (its TCP/HTTP address)."""

    def __init__(self, address: Address, timeout: float = 5.0) -> None:
        self.base = 'http://%s' % format_address(address)
        self._timeout = timeout

    def _get(self, path: str, params: Optional[Mapping[str, Any]] = None) -> Any:
        url = self.base + path
        if params:
            url += '?' + urllib.parse.urlencode({k: v for k, v in params.items() if v not in (None, '')})
        try:
            with _OPENER.open(url, timeout=self._timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            try:
                message = json.loads(exc.read()).get('message')
            except ValueError:
                message = exc.reason
            raise SourceError('%s: HTTP %d: %s' % (url, exc.code, message)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise SourceError('no daemon at %s (%s); start one with "aws-like-sdk daemon"'
                              % (self.base, getattr(exc, 'reason', exc))) from None

    def list(self, params: Mapping[str, Any]) -> Dict[str, Any]:
        """``{"traces": [...], "last_seq": N}``; see :func:`api.trace_filter` for params."""
        return self._get('/api/traces', params)

    def trace(self, trace_id: str) -> Optional[Dict[str, Any]]:
        """``{"summary", "roots"}`` or None."""
        return self._get('/api/traces/' + urllib.parse.quote(trace_id))


class StoreSource:
    """Traces read directly from a store file (works without a running daemon)."""

    def __init__(self, path: str) -> None:
        self._store = Store(path)

    def list(self, params: Mapping[str, Any]) -> Dict[str, Any]:
        """As :meth:`ApiSource.list`."""
        return api.list_traces(self._store, {k: str(v) for k, v in params.items() if v is not None})

    def trace(self, trace_id: str) -> Optional[Dict[str, Any]]:
        """As :meth:`ApiSource.trace`."""
        return api.get_trace(self._store, trace_id)


def newest_first(traces: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Sort summaries newest first."""
    return sorted(traces, key=lambda t: t.get('start_time') or 0, reverse=True)
