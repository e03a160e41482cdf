"""Parse ``--forward`` values and build forwarders."""
from dataclasses import dataclass, field
from typing import Dict, Optional

from ..stats import Counters
from .base import Forwarder


@dataclass
class ForwardSpec:
    """One ``--forward`` target: ``xray`` or ``otlp=URL``."""

    kind: str
    url: Optional[str] = None
    endpoint_url: Optional[str] = None
    region: Optional[str] = None
    otlp_encoding: str = 'protobuf'
    otlp_headers: Dict[str, str] = field(default_factory=dict)


def parse_forward_spec(text: str) -> ForwardSpec:
    """Parse ``xray`` or ``otlp=http://host:4318`` (the ``/v1/traces`` path is added if missing).

    Raises:
        ValueError: for anything else.
    """
    kind, sep, value = text.partition('=')
    kind = kind.strip().lower()
    if kind == 'xray' and not sep:
        return ForwardSpec('xray')
    if kind == 'otlp' and value.strip():
        url = value.strip()
        scheme, _, rest = url.partition('://')
        if scheme not in ('http', 'https') or not rest:
            raise ValueError('otlp needs an http(s) URL, e.g. otlp=http://127.0.0.1:4318')
        if '/' not in rest or rest.endswith('/') and rest.count('/') == 1:
            url = url.rstrip('/') + '/v1/traces'
        return ForwardSpec('otlp', url=url)
    raise ValueError('--forward takes "xray" or "otlp=URL", got %r' % text)


def build_forwarder(spec: ForwardSpec, counters: Counters) -> Forwarder:
    """Create (but do not start) the forwarder for ``spec``."""
    if spec.kind == 'xray':
        from .xray import XRayForwarder
        return XRayForwarder(counters, endpoint_url=spec.endpoint_url, region=spec.region)
    from .otlp import OTLPForwarder
    return OTLPForwarder(counters, spec.url, encoding=spec.otlp_encoding, headers=spec.otlp_headers)
