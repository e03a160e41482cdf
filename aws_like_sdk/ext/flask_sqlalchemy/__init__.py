"""Flask-SQLAlchemy 3 integration: :class:`~aws_like_sdk.ext.flask_sqlalchemy.query.XRayFlaskSqlAlchemy`."""
