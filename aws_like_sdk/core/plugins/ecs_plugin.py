"""ECS plugin: records the container id (the container's host name) under ``aws.ecs``."""
import logging
import socket
from typing import Any, Dict

log = logging.getLogger(__name__)

SERVICE_NAME = 'ecs'
ORIGIN = 'AWS::ECS::Container'

runtime_context: Dict[str, Any] = {}


def initialize() -> None:
    """Fill :data:`runtime_context` with ``{'container': <host name>}``."""
    global runtime_context
    try:
        host_name = socket.gethostname()
    except OSError:
        log.warning('Could not read the host name for the ECS plugin.', exc_info=True)
        host_name = ''
    runtime_context = {'container': host_name} if host_name else {}
