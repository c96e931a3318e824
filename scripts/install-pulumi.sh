#!/usr/bin/env bash
# Makes the pinned Pulumi CLI (the version of the `pulumi` Python SDK in requirements.txt) ready
# in ${PULUMI_HOME:-~/.pulumi}/bin: one already there at that version is kept (and, where Go is
# present, only if the project's tools there were built from the current tools/pulumi sources);
# otherwise Pulumi's official installer; where that cannot download and Go is present, a build
# from Pulumi's Go modules (tools/pulumi/build.sh). Prints the bin directory to put on PATH as
# its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^pulumi==\([0-9.]*\)$/\1/p' requirements.txt)
[ -n "$version" ] || { echo "requirements.txt pins no pulumi==X.Y.Z" >&2; exit 1; }
bin=${PULUMI_HOME:-$HOME/.pulumi}/bin

ready() {
    [ -x "$bin/pulumi" ] && [ -x "$bin/pulumi-language-python" ] &&
        [ -x "$bin/pulumi-resource-pulumi-python" ] &&
        [ "$("$bin/pulumi" version 2>/dev/null)" = "v$version" ] &&
        { ! command -v go >/dev/null 2>&1 ||
            [ "$(cat "$bin/.rbee-tools" 2>/dev/null)" = "$(bash tools/pulumi/sources.sh)" ]; }
}

if ready; then
    echo "pulumi v$version is in $bin" >&2
elif command -v curl >/dev/null 2>&1 && getent hosts get.pulumi.com >/dev/null 2>&1 &&
    echo "pulumi v$version: Pulumi's installer" >&2 &&
    curl -fsSL --max-time 120 https://get.pulumi.com |
    sh -s -- --version "$version" --install-root "$(dirname "$bin")" --no-edit-path >&2 &&
    ready; then
    :
elif command -v go >/dev/null 2>&1; then
    echo "pulumi v$version: Pulumi's installer cannot download here; building it from its Go" \
        "modules with $(go version | cut -d' ' -f3) (about 5 minutes on 2 cores the first time)" >&2
    started=$SECONDS
    bash tools/pulumi/build.sh "$bin" >&2
    echo "pulumi v$version built in $((SECONDS - started))s" >&2
    ready || { echo "the built pulumi does not report v$version" >&2; exit 1; }
else
    echo "no Pulumi CLI: Pulumi's installer cannot download here and Go is not installed" \
        "(install Go 1.26 or the CLI v$version: https://www.pulumi.com/docs/install/)" >&2
    exit 1
fi
echo "$bin"
