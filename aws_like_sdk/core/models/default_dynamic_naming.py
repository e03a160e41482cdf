"""Name segments after the request host when it matches a pattern."""
from typing import Optional

from ..utils.search_pattern import wildcard_match


class DefaultDynamicNaming:
    """Use the host name if it matches ``pattern`` (``*``/``?`` wildcards), else ``fallback``."""

    def __init__(self, pattern: str, fallback: Optional[str]) -> None:
        self._pattern = pattern
        self._fallback = fallback

    def get_name(self, host_name: Optional[str]) -> Optional[str]:
        """Return the segment name for a request to ``host_name``."""
        if wildcard_match(self._pattern, host_name):
            return host_name
        return self._fallback
