"""Flask integration: ``XRayMiddleware(app, xray_recorder)`` in :mod:`aws_like_sdk.ext.flask.middleware`."""
