#!/usr/bin/env bash
# Style, types and architecture, checked before any test runs (scripts/test.sh
# and so .ci/run call this first). The first check that fails stops the run
# with a message naming it; the tools come from the lint extra:
#   pip install -e '.[lint]'
set -uo pipefail
cd "$(dirname "$0")/.."

check() {
    local what=$1
    shift
    echo "==> $what: $*"
    if ! "$@"; then
        echo "check failed: $what ($*); the tests were not run" >&2
        exit 1
    fi
}

check "lint" ruff check .
check "format" ruff format --check .
check "architecture" python scripts/lint_imports.py
# scripts/typecheck.py runs mypy with [tool.mypy] (strict on the core) over a
# tree laid out as the package: mypy cannot map the folders onto it itself.
check "types" python scripts/typecheck.py
