"""Wildcard matching used by sampling rules, dynamic naming and httplib ignore rules."""
import functools
import re
from typing import Optional


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str, case_insensitive: bool) -> 're.Pattern[str]':
    parts = []
    for char in pattern:
        if char == '*':
            parts.append('.*')
        elif char == '?':
            parts.append('.')
        else:
            parts.append(re.escape(char))
    return re.compile(''.join(parts) + r'\Z', re.DOTALL | (re.IGNORECASE if case_insensitive else 0))


def wildcard_match(pattern: Optional[str], text: Optional[str], case_insensitive: bool = True) -> bool:
    """Match ``text`` against ``pattern`` where ``*`` is any run and ``?`` is one character.

    Returns False when either side is None; an empty pattern matches only empty text.
    """
    if pattern is None or text is None:
        return False
    if pattern == '*':
        return True
    return _compile(pattern, case_insensitive).match(text) is not None
