"""Django for this test package only.

Django's settings are process-global, and ``XRayConfig.ready()`` configures the global recorder,
so setup happens in a package-scoped fixture (not at import): the recorder is given fresh mutable
parts first and restored afterwards, and the SQLite databases live in a temporary directory.
Other test packages never import Django and never see any of it.
"""
import contextlib
import os
import shutil
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SETTINGS_MODULE = 'tests.ext.django.project.settings'


def _configure_django(database_dir: str) -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        os.environ['XRAY_TEST_DATABASE_DIR'] = database_dir
        try:
            import importlib
            module = importlib.import_module(SETTINGS_MODULE)
        finally:
            del os.environ['XRAY_TEST_DATABASE_DIR']
        settings.configure(**{name: getattr(module, name) for name in dir(module) if name.isupper()})
    django.setup()


def _snapshot(recorder):
    return dict(recorder.__dict__), recorder.context.context_missing, recorder.streaming_threshold


def _restore(recorder, state):
    attrs, context_missing, threshold = state
    recorder.__dict__.clear()
    recorder.__dict__.update(attrs)
    recorder.context.context_missing = context_missing
    recorder.streaming_threshold = threshold


@pytest.fixture(scope='package', autouse=True)
def django_project():
    """Configure Django once for this package, migrate both databases, undo recorder changes after."""
    from aws_like_sdk.core import xray_recorder
    from aws_like_sdk.core.context import Context
    from aws_like_sdk.core.emitters.udp_emitter import UDPEmitter
    from aws_like_sdk.core.streaming.default_streaming import DefaultStreaming

    state = _snapshot(xray_recorder)
    # ready() mutates the emitter, context and streaming objects in place: give it private ones.
    xray_recorder.emitter = UDPEmitter()
    xray_recorder.context = Context()
    xray_recorder.streaming = DefaultStreaming(xray_recorder.streaming_threshold)
    database_dir = tempfile.mkdtemp(prefix='xray-django-')
    try:
        _configure_django(database_dir)
        from django.core.management import call_command
        from django.db import connections
        for alias in ('default', 'other'):
            call_command('migrate', database=alias, verbosity=0, interactive=False)
        connections.close_all()
        yield database_dir
    finally:
        try:
            from django.db import connections
            connections.close_all()
        except Exception:  # noqa: BLE001
            pass
        _restore(xray_recorder, state)
        shutil.rmtree(database_dir, ignore_errors=True)


@pytest.fixture
def django_xray(xray):
    """The global recorder emitting to the test's UDP sink, named as the project's settings say."""
    xray.service = 'django-test'
    return xray


@pytest.fixture
def client(django_xray):
    """Django's test client (answers 500 instead of re-raising view errors)."""
    from django.test import Client
    return Client(raise_request_exception=False)


@pytest.fixture
def asgi_client(django_xray):
    """An httpx client driving Django's real ASGIHandler in this event loop."""
    import httpx
    from django.core.handlers.asgi import ASGIHandler
    transport = httpx.ASGITransport(app=ASGIHandler(), client=('10.1.2.3', 4567))
    return httpx.AsyncClient(transport=transport, base_url='http://testserver', timeout=10)


@pytest.fixture
def settings_override():
    """``with settings_override(KEY=value):`` runs with those XRAY_RECORDER keys changed."""
    from django.conf import settings
    from django.test import override_settings

    @contextlib.contextmanager
    def override(**keys):
        with override_settings(XRAY_RECORDER=dict(settings.XRAY_RECORDER, **keys)):
            yield

    return override
