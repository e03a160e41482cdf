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

# Rerun one integration's tests against the oldest release it supports, in a virtualenv layered on this
# environment (only the pinned packages differ). Arguments: venv name, version check, test path, pins...
test_supported_floor() {
    local venv="${TMPDIR:-/tmp}/aws_like_sdk-$1" check="$2" tests="$3"
    shift 3
    [ -x "$venv/bin/python" ] || python -m venv --system-site-packages "$venv"
    # pip warns that packages outside the venv want newer releases; the tests below do not use them. A
    # failed install still fails the version check.
    "$venv/bin/python" -m pip install -q "$@" 2>&1 | grep -v 'dependency resolver\| requires ' || true
    "$venv/bin/python" -c "$check"
    "$venv/bin/python" -m pytest -q -p no:cacheprovider "$tests"
}

# Skipped when arguments select tests.
if [ "$#" -eq 0 ]; then
    # Django: 4.2 LTS through the newest release.
    test_supported_floor django42 \
        'import django; assert django.VERSION[:2] == (4, 2), django.VERSION; print("Django", django.get_version())' \
        tests/ext/django 'Django>=4.2,<5.0'
    # aiohttp: 3.9 through the newest release. 3.9 predates yarl 1.10, whose stricter host check breaks
    # 3.9's own sub-application routing.
    test_supported_floor aiohttp39 \
        'import aiohttp; assert aiohttp.__version__.startswith("3.9."), aiohttp.__version__; print("aiohttp", aiohttp.__version__)' \
        tests/ext/aiohttp 'aiohttp>=3.9,<3.10' 'yarl<1.10'
fi
