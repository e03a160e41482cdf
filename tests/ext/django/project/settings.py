"""Settings of the test Django project.

The SQLite files live in ``XRAY_TEST_DATABASE_DIR`` (a temporary directory chosen by the tests);
subprocess tests replace ``XRAY_RECORDER`` through ``XRAY_TEST_XRAY_RECORDER`` (JSON).
"""
import json
import os

BASE_DIR = os.path.dirname(os.path.abspath(__file__))
DATABASE_DIR = os.environ.get('XRAY_TEST_DATABASE_DIR', BASE_DIR)

SECRET_KEY = 'not-a-secret-test-only'
DEBUG = False
ALLOWED_HOSTS = ['testserver', 'localhost', '127.0.0.1', 'example.com', '.example.com']
ROOT_URLCONF = 'tests.ext.django.project.urls'
USE_TZ = True
DEFAULT_AUTO_FIELD = 'django.db.models.AutoField'

INSTALLED_APPS = [
    'aws_like_sdk.ext.django',
    'tests.ext.django.project.shop',
]

MIDDLEWARE = [
    'aws_like_sdk.ext.django.middleware.XRayMiddleware',
    'django.middleware.common.CommonMiddleware',
]

DATABASES = {
    'default': {
        'ENGINE': 'django.db.backends.sqlite3',
        'NAME': os.path.join(DATABASE_DIR, 'default.sqlite3'),
    },
    'other': {
        'ENGINE': 'django.db.backends.sqlite3',
        'NAME': os.path.join(DATABASE_DIR, 'other.sqlite3'),
    },
}

TEMPLATES = [{
    'BACKEND': 'django.template.backends.django.DjangoTemplates',
    'DIRS': [os.path.join(BASE_DIR, 'templates')],
    'APP_DIRS': False,
    'OPTIONS': {},
}]

LOGGING_CONFIG = None

XRAY_RECORDER = {
    'AWS_XRAY_TRACING_NAME': 'django-test',
    'SAMPLING': False,
    'AWS_XRAY_DAEMON_ADDRESS': os.environ.get('XRAY_TEST_DAEMON', '127.0.0.1:2000'),
    'AWS_XRAY_CONTEXT_MISSING': 'LOG_ERROR',
}

if os.environ.get('XRAY_TEST_XRAY_RECORDER'):
    XRAY_RECORDER = json.loads(os.environ['XRAY_TEST_XRAY_RECORDER'])
