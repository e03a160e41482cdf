"""aws_like_sdk: an X-Ray compatible tracing SDK.

Importing this package has no side effects beyond creating the process-wide
``global_sdk_config`` switch.
"""
from .sdk_config import SDKConfig

global_sdk_config = SDKConfig()

__all__ = ['global_sdk_config', 'SDKConfig']
