#!/usr/bin/env bash
# Install everything the tests need (system packages included) and run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "chromium could not be installed; browser tests will be skipped" >&2
fi
python -m pip install -q -e '.[test]'
python -m pytest -q -p no:cacheprovider "$@"

# The Django integration supports 4.2 LTS through the newest release: run its tests against 4.2 as well,
# in a virtualenv layered on this environment (only Django differs). Skipped when arguments select tests.
if [ "$#" -eq 0 ]; then
    venv="${TMPDIR:-/tmp}/aws_like_sdk-django42"
    [ -x "$venv/bin/python" ] || python -m venv --system-site-packages "$venv"
    "$venv/bin/python" -m pip install -q 'Django>=4.2,<5.0'
    "$venv/bin/python" -c 'import django; assert django.VERSION[:2] == (4, 2), django.VERSION; print("Django", django.get_version())'
    "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/ext/django

    # The aiohttp integration supports 3.9 through the newest release: its tests run against 3.9 as well.
    # aiohttp 3.9 predates yarl 1.10, whose stricter host check breaks 3.9's own sub-application routing.
    venv="${TMPDIR:-/tmp}/aws_like_sdk-aiohttp39"
    [ -x "$venv/bin/python" ] || python -m venv --system-site-packages "$venv"
    # pip warns that packages outside this venv want a newer aiohttp; they are not used by these tests.
    "$venv/bin/python" -m pip install -q 'aiohttp>=3.9,<3.10' 'yarl<1.10' 2>&1 | grep -v 'dependency\|requires aiohttp' || true
    "$venv/bin/python" -c 'import aiohttp; assert aiohttp.__version__.startswith("3.9."), aiohttp.__version__; print("aiohttp", aiohttp.__version__)'
    "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/ext/aiohttp
fi
