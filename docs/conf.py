"""Sphinx configuration for aws_like_sdk."""
import os
import sys

sys.path.insert(0, os.path.abspath('..'))

from aws_like_sdk.version import VERSION  # noqa: E402

project = 'aws_like_sdk'
author = 'aws_like_sdk developers'
release = version = VERSION
extensions = ['sphinx.ext.autodoc', 'sphinx.ext.napoleon', 'sphinx.ext.viewcode']
autodoc_mock_imports = ['django', 'flask', 'aiohttp', 'sqlalchemy', 'flask_sqlalchemy', 'starlette',
                        'botocore', 'requests', 'httpx']
autodoc_member_order = 'bysource'
exclude_patterns = ['_build']
html_theme = 'alabaster'
html_static_path = ['_static']
suppress_warnings = ['autodoc.import_object']
nitpicky = False
