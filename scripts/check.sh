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
# LEAD: enable the next line once the [tool.mypy] settings (strict on
# dunetrace_core, the folder-to-package mapping) from the house branch are
# merged; without them mypy cannot find the dunetrace package. Then add
# "types" to CHECKS in tests/packaging/test_ci_checks.py.
# check "types" python -m mypy
