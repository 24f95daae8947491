#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the package with every
# extra, Debian's chromium for the dashboard test, then runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e '.[all,test]'
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "The dashboard test needs Debian's chromium: sudo apt-get install chromium" >&2
    fi
fi
export CREWAI_DISABLE_TELEMETRY=true OTEL_SDK_DISABLED=true CREWAI_TESTING=true
exec python -m pytest "$@"
