#!/bin/sh
# args: job dir, lines of log to print
. lib/env.sh
tail -n "$2" -- "$1/log" 2>/dev/null || true
