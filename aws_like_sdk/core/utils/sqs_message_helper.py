"""Helpers for SQS records received by Lambda."""
from typing import Any, Mapping

SQS_XRAY_HEADER = 'AWSTraceHeader'


class SqsMessageHelper:
    """Reads the trace header SQS attaches to messages delivered to Lambda."""

    @staticmethod
    def isSampled(sqs_message: Mapping[str, Any]) -> bool:  # noqa: N802 - upstream name
        """Return True when the record's ``AWSTraceHeader`` attribute carries ``Sampled=1``."""
        try:
            header = sqs_message['attributes'][SQS_XRAY_HEADER]
        except (KeyError, TypeError):
            return False
        return isinstance(header, str) and 'Sampled=1' in header
