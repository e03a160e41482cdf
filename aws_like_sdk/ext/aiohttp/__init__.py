"""aiohttp integration: the server :mod:`~aws_like_sdk.ext.aiohttp.middleware` and the client
:mod:`~aws_like_sdk.ext.aiohttp.client` ``TraceConfig``."""
