"""One recorded exception (an entry of ``cause.exceptions``)."""
import logging
import os
from typing import Any, Dict, Iterable, List

from ..utils.ids import random_hex

log = logging.getLogger(__name__)

# Frames inside this SDK are noise for users; upstream filters its own package the same way.
_OWN_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep


def _frames_to_dicts(stack: Iterable[Any]) -> List[Dict[str, Any]]:
    frames = []
    for entry in stack or ():
        try:
            filename, lineno, name = entry[0], entry[1], entry[2]
        except (TypeError, IndexError):
            continue
        if filename and filename.startswith(_OWN_PACKAGE_DIR):
            continue
        frames.append({'path': os.path.basename(filename) if filename else '', 'line': lineno, 'label': name})
    return frames


class Throwable:
    """An exception with its stack, marked on the exception object so outer entities refer to it by id."""

    def __init__(self, exception: BaseException, stack, remote: bool = False) -> None:
        self.id = random_hex(8)
        try:
            message = str(exception)
        except Exception:  # noqa: BLE001 - a broken __str__ must not break recording
            message = None
        self.message = message if isinstance(message, str) and message else None
        self.type = type(exception).__name__
        self.remote = bool(remote)
        self.stack = _frames_to_dicts(stack)
        try:
            exception._recorded = True
            exception._cause_id = self.id
        except Exception:  # noqa: BLE001 - some exception types refuse attributes
            log.debug('Cannot mark exception %s as recorded.', self.type)

    def to_dict(self) -> Dict[str, Any]:
        result: Dict[str, Any] = {'id': self.id}
        if self.message is not None:
            result['message'] = self.message
        result['type'] = self.type
        result['remote'] = self.remote
        if self.stack:
            result['stack'] = self.stack
        return result
