#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the package with every
# extra, the test and lint tools and the Debian packages the tests use
# (chromium, postgresql), runs the checks of scripts/check.sh (style, types,
# architecture; the first failure stops here), then runs pytest.
# DUNETRACE_SKIP_SETUP=1 skips the installing, on a machine already set up.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${DUNETRACE_SKIP_SETUP:-}" != 1 ]; then
    python -m pip install -q -e '.[all,test,lint]'
    # Debian packages the tests use for real: chromium (dashboard pages) and
    # postgresql (the collector's PostgreSQL store, the upstream backend, whose
    # source tests/upstream finds in ../shared/upstream-backend).
    need=()
    command -v chromium >/dev/null 2>&1 || need+=(chromium)
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
    # tests/upstream makes the upstream backend a venv of its own (python -m venv,
    # then pip from PyPI); Debian's own Python needs python3-venv for that.
    python -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
    if [ ${#need[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
        else
            echo "The tests need Debian's ${need[*]}: sudo apt-get install ${need[*]}" >&2
        fi
    fi
fi
bash scripts/check.sh
export CREWAI_DISABLE_TELEMETRY=true OTEL_SDK_DISABLED=true CREWAI_TESTING=true
exec python -m pytest "$@"
