"""EC2 plugin: records the instance identity under ``aws.ec2``.

The identity document is read from the instance metadata service with IMDSv2 (a session token from
``PUT /latest/api/token``, then ``GET /latest/dynamic/instance-identity/document``); when no token
can be had, the document is requested without one (IMDSv1). Each request times out after
:data:`TIMEOUT` seconds, never goes through an HTTP proxy, and runs with tracing suppressed. A
successful result is cached for the process, so configuring again costs nothing.

:data:`IMDS_URL` and :data:`TIMEOUT` are module variables so tests can point the plugin at a
loopback server; applications should leave them alone.
"""
import http.client
import json
import logging
import threading
import urllib.error
import urllib.request
from typing import Any, Dict, Optional

from ..suppression import suppress_tracing

log = logging.getLogger(__name__)

SERVICE_NAME = 'ec2'
ORIGIN = 'AWS::EC2::Instance'

#: Base URL of the metadata service (test-only override).
IMDS_URL = 'http://169.254.169.254/latest/'
#: Seconds allowed per metadata request (test-only override).
TIMEOUT = 1.0
TOKEN_TTL_SECONDS = 60

runtime_context: Dict[str, Any] = {}

_cache: Dict[str, Dict[str, Any]] = {}
_cache_lock = threading.Lock()
# Link-local metadata must never be sent to a proxy configured for the application's traffic.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def initialize() -> None:
    """Fill :data:`runtime_context` with ``instance_id``, ``availability_zone``,
    ``instance_type`` and ``ami_id``; it stays empty when the metadata service is unavailable."""
    global runtime_context
    base = IMDS_URL
    with _cache_lock:
        cached = _cache.get(base)
    if cached is not None:
        runtime_context = dict(cached)
        return
    token = get_token()
    context = get_metadata(token)
    if context:
        with _cache_lock:
            _cache[base] = dict(context)
    runtime_context = context


def get_token() -> Optional[str]:
    """Return an IMDSv2 session token, or None when the service gives none (then IMDSv1 is tried)."""
    headers = {'X-aws-ec2-metadata-token-ttl-seconds': str(TOKEN_TTL_SECONDS)}
    return do_request(IMDS_URL + 'api/token', headers=headers, method='PUT')


def get_metadata(token: Optional[str] = None) -> Dict[str, Any]:
    """Fetch the instance identity document (with ``token`` when given) and parse it.

    Returns:
        The plugin's fields, or an empty dict on any failure.
    """
    headers = {'X-aws-ec2-metadata-token': token} if token else {}
    document = do_request(IMDS_URL + 'dynamic/instance-identity/document', headers=headers)
    if document is None:
        return {}
    return parse_metadata_json(document)


def parse_metadata_json(json_str: str) -> Dict[str, Any]:
    """Map an identity document to ``instance_id``, ``availability_zone``, ``instance_type`` and
    ``ami_id``; a malformed document gives an empty dict."""
    try:
        data = json.loads(json_str)
    except (TypeError, ValueError):
        log.warning('EC2 instance identity document is not JSON.')
        return {}
    if not isinstance(data, dict):
        return {}
    fields = {'instance_id': 'instanceId', 'availability_zone': 'availabilityZone',
              'instance_type': 'instanceType', 'ami_id': 'imageId'}
    return {name: data[key] for name, key in fields.items() if data.get(key) is not None}


def do_request(url: str, headers: Optional[Dict[str, str]] = None, method: str = 'GET') -> Optional[str]:
    """Send one metadata request; return the body, or None on any error or non-200 status."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with suppress_tracing(), _opener.open(request, timeout=TIMEOUT) as response:
            if response.status != 200:
                return None
            return response.read().decode('utf-8')
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        log.debug('EC2 metadata request %s %s failed: %s', method, url, exc)
        return None


def _clear_cache() -> None:
    """Forget the cached identity (for tests)."""
    with _cache_lock:
        _cache.clear()
