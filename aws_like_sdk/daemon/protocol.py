"""The daemon's datagram rules: header + ``\\n`` + body, validated exactly as the X-Ray daemon does."""
import json
from typing import Optional, Tuple

#: The X-Ray daemon reads into 64 KiB buffers; anything larger is truncated by the kernel.
BUFFER_SIZE = 65536

#: Reasons a datagram is rejected; also the keys of the ``rejected`` counters.
MISSING_HEADER = 'missing_header'
MISSING_BODY = 'missing_body'
INVALID_HEADER = 'invalid_header'
OVERSIZE = 'oversize'


def split_datagram(data: bytes) -> Tuple[Optional[bytes], Optional[str]]:
    """Split one datagram into its body, or say why it is rejected.

    Mirrors the reference daemon: split at the first newline; no newline means the whole
    datagram is a header and the body is missing; the header JSON error is ignored and the
    header is valid iff ``format`` equals ``json`` case-insensitively and ``version == 1``.

    Args:
        data: the raw datagram.

    Returns:
        ``(body, None)`` when accepted, ``(None, reason)`` when rejected.
    """
    header, sep, body = data.partition(b'\n')
    if not sep:
        return None, MISSING_HEADER
    if not body:
        return None, MISSING_BODY
    if not _header_is_valid(header):
        return None, INVALID_HEADER
    return body, None


def _header_is_valid(header: bytes) -> bool:
    # Go's json.Unmarshal into a struct ignores the error and keeps whatever fields it
    # managed to fill, and its key matching is case-insensitive; an unparsable header
    # therefore ends up with zero values and fails the check below.
    try:
        parsed = json.loads(header)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # A deeply nested header ('[[[[...') exhausts the parser's recursion limit; letting that escape
        # would end the UDP receiver thread and with it all ingestion.
        return False
    if not isinstance(parsed, dict):
        return False
    fields = {str(k).lower(): v for k, v in parsed.items()}
    fmt = fields.get('format')
    version = fields.get('version')
    # Go decodes the JSON number 1.0 into an int field as an error, and true is never 1.
    return (isinstance(fmt, str) and fmt.lower() == 'json'
            and type(version) is int and version == 1)
