#!/usr/bin/env bash
# The test command (README): the whole suite, with the coverage floor. Needs root for the
# harness's sshd hosts; `.ci/run` installs everything first.
#
# Without arguments it runs in two stages, one coverage total over both:
#   1. the suite: every test but the real builds (`-m "not real_build"`);
#   2. the real builds: the main job on rbee's real source tree, a cargo build of rbee's own
#      worker (minutes on 2 cores; `-m real_build`).
# With arguments, one pytest run with them (e.g. `-m unit`, a file, `-k name`).
#
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
# byte-compiled, as an install is (see scripts/localhost.sh): the suite starts hundreds of
# programs and providers, each of which would otherwise compile rbee-infra's modules again
python3 -m compileall -q rbee_infra benchmarks tests >/dev/null
run() {
  python3 -m pytest -q -p no:cacheprovider "${order[@]}" --durations=15 --cov=rbee_infra "$@"
}
explain() {
  if [ "$1" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here" >&2
  fi
}
report=(--cov-report=term --cov-report=xml:reports/coverage.xml --cov-fail-under=90)

if [ "$#" -gt 0 ]; then
  run "${report[@]}" "$@"
  status=$?
  explain "$status"
  exit "$status"
fi

started=$SECONDS
echo "== stage 1 of 2: the suite (every test but the real builds)"
run --cov-report= -m "not real_build"
suite=$?
explain "$suite"
echo "== stage 1 took $((SECONDS - started)) s"

started=$SECONDS
echo "== stage 2 of 2: the real builds (rbee's own tree), coverage over both stages"
run --cov-append "${report[@]}" -m real_build
real=$?
explain "$real"
echo "== stage 2 took $((SECONDS - started)) s"

if [ "$suite" -ne 0 ]; then
  exit "$suite"
fi
exit "$real"
