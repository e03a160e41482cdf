"""Capture the current stack plus the active exception's traceback."""
import sys
import traceback
from typing import List, Optional


def _trim(frames: list, limit: Optional[int]) -> list:
    # Same convention as the traceback module: positive keeps the last N, negative the first N.
    if limit is None:
        return frames
    if limit >= 0:
        return frames[-limit:] if limit else []
    return frames[:-limit]


def get_stacktrace(limit: Optional[int] = None) -> List[traceback.FrameSummary]:
    """Return the calling stack (minus this function) followed by the active exception's traceback."""
    stack = traceback.extract_stack(sys._getframe(1))
    exc_tb = sys.exc_info()[2]
    if exc_tb is not None:
        # The frame that caught the exception appears in both lists; keep the traceback's copy.
        stack = stack[:-1] + traceback.extract_tb(exc_tb)
    return _trim(stack, limit)
