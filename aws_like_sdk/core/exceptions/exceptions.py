"""Exceptions raised by the SDK. Users mostly catch SegmentNotFoundException and AlreadyEndedException."""


class InvalidSamplingManifestError(Exception):
    """A sampling rules document is malformed."""


class SegmentNotFoundException(Exception):
    """No segment is open where one is required (RUNTIME_ERROR strategy)."""


class InvalidDaemonAddressException(Exception):
    """``AWS_XRAY_DAEMON_ADDRESS`` or ``daemon_address`` cannot be parsed."""


class SegmentNameMissingException(Exception):
    """A segment was begun without a name and no service name is configured."""


class SubsegmentNameMissingException(Exception):
    """Kept for compatibility; subsegments without a name are rejected by SegmentNameMissingException."""


class FacadeSegmentMutationException(Exception):
    """The Lambda facade segment cannot be modified."""


class MissingPluginNames(Exception):
    """``configure(plugins=...)`` was given an empty plugin name."""


class AlreadyEndedException(Exception):
    """An entity was modified after it was closed."""
