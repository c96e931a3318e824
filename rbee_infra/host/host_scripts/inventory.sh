#!/bin/sh
# args: triples of (install name, stable path, receipt path). What a no-op check needs to
# know (receipts and checksums), without the toolchain and platform facts: read-only.
. lib/env.sh
. lib/sha.sh
. lib/inventory.sh
