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
