"""Forward to the X-Ray service with PutTraceSegments, through botocore.

Credentials and region come from botocore's standard chain (environment, shared
config and credentials files, SSO, container and instance roles), as the reference
daemon's do. Bodies are forwarded exactly as received; the service validates them.
"""
import logging
from typing import Any, List, Optional

from ..documents import Document
from ..stats import Counters
from .base import Forwarder, PermanentError, RetryableError

log = logging.getLogger(__name__)

BATCH_SIZE = 50  # the PutTraceSegments limit the reference daemon also uses
_PERMANENT_CODES = {'ValidationException', 'InvalidRequestException', 'AccessDeniedException',
                    'UnrecognizedClientException', 'InvalidSignatureException'}


class ForwardingSetupError(RuntimeError):
    """botocore is missing or no region can be found."""


def make_xray_client(endpoint_url: Optional[str] = None, region: Optional[str] = None) -> Any:
    """A botocore X-Ray client on the standard credential chain.

    Raises:
        ForwardingSetupError: when botocore is not installed or no region is configured.
    """
    try:
        import botocore.config
        import botocore.session
    except ImportError:
        raise ForwardingSetupError('--forward xray needs botocore: pip install "aws_like_sdk[forward]"') from None
    session = botocore.session.get_session()
    region = region or session.get_config_variable('region')
    if not region:
        raise ForwardingSetupError('--forward xray needs a region: --region, AWS_REGION or ~/.aws/config')
    # Retries are ours (bounded buffer + backoff), so botocore tries once per batch.
    config = botocore.config.Config(retries={'total_max_attempts': 1}, connect_timeout=5, read_timeout=10)
    return session.create_client('xray', region_name=region, endpoint_url=endpoint_url, config=config)


class XRayForwarder(Forwarder):
    """Batches of up to 50 raw documents to PutTraceSegments."""

    def __init__(self, counters: Counters, endpoint_url: Optional[str] = None,
                 region: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__('xray', counters, batch_size=BATCH_SIZE, **kwargs)
        self._client = make_xray_client(endpoint_url, region)

    def convert(self, raw: bytes, document: Optional[Document]) -> Optional[str]:
        """Every accepted body is forwarded, as the reference daemon does."""
        return document.raw if document is not None else raw.decode('utf-8', 'replace')

    def send(self, batch: List[str]) -> int:
        """PutTraceSegments; unprocessed segments are logged and counted as rejected."""
        from botocore.exceptions import BotoCoreError, ClientError
        try:
            response = self._client.put_trace_segments(TraceSegmentDocuments=batch)
        except ClientError as exc:
            code = exc.response.get('Error', {}).get('Code', '')
            if code in _PERMANENT_CODES:
                raise PermanentError('%s: %s' % (code, exc)) from None
            raise RetryableError(str(exc)) from None
        except BotoCoreError as exc:
            raise RetryableError(str(exc)) from None
        unprocessed = response.get('UnprocessedTraceSegments') or []
        for item in unprocessed[:5]:
            log.warning('X-Ray did not accept segment %s: %s %s', item.get('Id'), item.get('ErrorCode'),
                        item.get('Message'))
        return len(unprocessed)
