#!/usr/bin/env bash
# The test command (README): the whole suite, with the coverage floor. Needs root for the
# harness's sshd hosts; `.ci/run` installs everything first.
# The tests run in their default order (pyproject's addopts turn pytest-randomly off);
# RBEE_TEST_SEED=<n> shuffles them with pytest-randomly's seed n (the same n, the same order).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
order=()
if [ -n "${RBEE_TEST_SEED:-}" ]; then
  order=(-p randomly "--randomly-seed=$RBEE_TEST_SEED")
  echo "test order: shuffled by pytest-randomly, seed $RBEE_TEST_SEED"
fi
mkdir -p reports
python3 -m pytest -q -p no:cacheprovider "${order[@]}" \
  --durations=15 --cov=rbee_infra --cov-report=term --cov-report=xml:reports/coverage.xml \
  --cov-fail-under=90 "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
fi
exit "$status"
