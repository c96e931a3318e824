#!/usr/bin/env bash
# The test command (README): the whole suite, with the coverage floor. Needs root for the
# harness's sshd hosts; `.ci/run` installs everything first.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
mkdir -p reports
python3 -m pytest -q -p no:cacheprovider \
  --cov=rbee_infra --cov-report=term --cov-report=xml:reports/coverage.xml --cov-fail-under=90 "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
fi
exit "$status"
