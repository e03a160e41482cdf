"""A local X-Ray compatible daemon: UDP ingestion, SQLite trace store, viewer and forwarding.

The daemon speaks only the wire (SPEC Part C): it never imports the recorder, so it
cannot trace itself. Start it with ``aws-like-sdk daemon`` or ``python -m aws_like_sdk.daemon``.
"""
from .server import Daemon, DaemonOptions

__all__ = ['Daemon', 'DaemonOptions']
