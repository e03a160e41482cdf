"""The all-zero ids carried by unsampled entities (valid format, so SQS and others accept them)."""


class NoOpTraceId:
    """The no-op trace id ``1-00000000-000000000000000000000000``."""

    VERSION = '1'
    DELIMITER = '-'

    def __init__(self) -> None:
        self.start_time = '00000000'
        self.__number = '000000000000000000000000'

    def to_id(self) -> str:
        return '1-%s-%s' % (self.start_time, self.__number)


NOOP_TRACE_ID = '1-00000000-000000000000000000000000'
NOOP_ENTITY_ID = '0000000000000000'
