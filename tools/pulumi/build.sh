#!/usr/bin/env bash
# Builds the pinned Pulumi toolchain from its Go modules into BIN (default ~/.pulumi/bin, where
# Pulumi's installer puts it): the CLI, the Python language host (language-python/, ours: Pulumi's
# is not served as a module), its program runner from the Python SDK's Go module, the
# dynamic-provider launcher and the provider server it can take over (pulumi-dynamic-warm.py).
# Go's build cache is kept, so a second build takes seconds. Last, it records which sources it
# built from (BIN/.rbee-tools), so scripts/install-pulumi.sh builds again when they change.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-${PULUMI_HOME:-$HOME/.pulumi}/bin}
mkdir -p "$bin"
cd "$here"

version=$(go list -m -f '{{.Version}}' github.com/pulumi/pulumi/pkg/v3)
ldflags="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version"

step() {  # step NAME COMMAND...: one progress line per binary, with the time it took
    local name=$1 started=$SECONDS
    shift
    "$@"
    printf 'built %-32s %s in %ds\n' "$name" "$version" $((SECONDS - started))
}

step pulumi go build -trimpath -ldflags "$ldflags" -o "$bin/pulumi" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
step pulumi-language-python go build -trimpath \
    -ldflags "-s -w -X main.Version=${version#v}" -o "$bin/pulumi-language-python" ./language-python
sdk=$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
step pulumi-language-python-exec install -m 0755 \
    "$sdk/python/cmd/pulumi-language-python-exec" "$bin/pulumi-language-python-exec"
step pulumi-resource-pulumi-python install -m 0755 \
    pulumi-resource-pulumi-python "$bin/pulumi-resource-pulumi-python"
step pulumi-dynamic-warm.py install -m 0644 pulumi-dynamic-warm.py "$bin/pulumi-dynamic-warm.py"
"$bin/pulumi" version >/dev/null
bash sources.sh >"$bin/.rbee-tools"
