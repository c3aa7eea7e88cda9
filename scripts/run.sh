#!/bin/sh
# run.sh - the README's first command: packages, build, serve.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh run
make -s -j"$(nproc)" all
exec build/release/tekup serve "$@"
