#!/usr/bin/env bash
# Prints one line naming the sources of the tools build.sh builds (their sha256, together): what
# BIN/.rbee-tools records, and scripts/install-pulumi.sh compares, to build again after a change.
set -euo pipefail
cd "$(dirname "$0")"
cat build.sh go.mod go.sum language-python/main.go pulumi-resource-pulumi-python \
    pulumi-dynamic-warm.py | sha256sum | cut -d' ' -f1
