"""ORM-level tracing: :mod:`aws_like_sdk.ext.sqlalchemy.query` (``XRaySessionMaker``, ``XRaySession``, ``XRayQuery``)."""
