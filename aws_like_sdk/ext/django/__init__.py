"""Django integration: add ``'aws_like_sdk.ext.django'`` to ``INSTALLED_APPS`` and
``'aws_like_sdk.ext.django.middleware.XRayMiddleware'`` first in ``MIDDLEWARE``."""

# Django < 3.2 needed this to find the app config; newer versions find apps.XRayConfig by themselves.
default_app_config = 'aws_like_sdk.ext.django.apps.XRayConfig'
