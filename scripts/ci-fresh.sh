#!/usr/bin/env bash
# `.ci/run` as a fresh machine runs it: a clean clone of the committed HEAD in a new directory,
# a new virtualenv first on PATH (so `python3` and everything pip installs are new), a new
# PULUMI_HOME, new pip and Go caches, a new TMPDIR, and no coverage data or __pycache__ of an
# earlier run. Nothing of this machine's earlier runs can make it pass. It starts `.ci/run`
# with SIGINT ignored, as a CI runner may, and with ../shared beside the clone as beside the
# project. See docs/ci.md.
#
#   bash scripts/ci-fresh.sh              # everything fresh (the Pulumi CLI is built again, ~4 min)
#   RBEE_FRESH_KEEP_GO=1 bash scripts/ci-fresh.sh   # reuse Go's module and build caches
#
# Prints where it ran and keeps that directory (its log is run.log) so a red run can be read;
# exits with .ci/run's exit status.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -z "$(git status --porcelain --untracked-files=no)" ] ||
    echo "note: uncommitted changes are not part of the run (it clones HEAD)" >&2

base=$(mktemp -d "${RBEE_FRESH_BASE:-/var/tmp}/rbee-ci-fresh.XXXXXX")
chmod 0755 "$base"
git clone -q --no-local "$PWD" "$base/repo"
# what sits beside the project (rbee's real tree in ../shared) sits beside the clone too
[ -d ../shared ] && ln -s "$(cd ../shared && pwd)" "$base/shared"
git -C "$base/repo" checkout -q --detach "$(git rev-parse HEAD)"

mkdir -p "$base/home-cache" "$base/tmp" "$base/pulumi-home"
python3 -m venv "$base/venv"

env_vars=(
    "PATH=$base/venv/bin:$PATH"
    "VIRTUAL_ENV=$base/venv"
    "PULUMI_HOME=$base/pulumi-home"
    "PIP_CACHE_DIR=$base/home-cache/pip"
    "XDG_CACHE_HOME=$base/home-cache"
    "TMPDIR=$base/tmp"
    "HOME=$HOME"
    "LANG=${LANG:-C.UTF-8}"
)
if [ -z "${RBEE_FRESH_KEEP_GO:-}" ]; then
    env_vars+=("GOPATH=$base/go" "GOCACHE=$base/home-cache/go-build" "GOMODCACHE=$base/go/pkg/mod")
fi

echo "fresh CI run in $base (log: $base/run.log)"
started=$SECONDS
set +e
# with SIGINT ignored, as a CI runner that starts it in the background of a shell passes on
# (the suite must run the same: tests/conftest.py)
(trap '' INT && cd "$base/repo" && env -i "${env_vars[@]}" bash .ci/run) 2>&1 | tee "$base/run.log"
status=${PIPESTATUS[0]}
set -e
echo "fresh CI run: exit $status after $((SECONDS - started))s (in $base)"
exit "$status"
