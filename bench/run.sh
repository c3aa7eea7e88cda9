#!/bin/sh
# run.sh - the benchmark in one command (`make bench`): packages, release
# build, then bench/run.py (fresh cluster, seed, wrk + pgbench, RESULTS.md).
#
#   bench/run.sh [bench/run.py options]      e.g. --threads 16 --pool-size 16
#
# As root it installs missing Debian packages with apt-get; otherwise it
# prints the exact command and stops.  Exits non-zero when a correctness
# check fails (see bench/README.md).
set -eu
cd "$(dirname "$0")/.."

# What building and serving needs (the project's list) ...
scripts/deps.sh run
# ... and what the benchmark itself needs.
BENCH_PKGS="wrk valgrind postgresql-15 postgresql-client-15 python3 python3-psycopg2"
missing=""
for pkg in $BENCH_PKGS; do
  case "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" in
    *"install ok installed"*) ;;
    *) missing="$missing $pkg" ;;
  esac
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "the benchmark needs these Debian packages:$missing" >&2
    echo "install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
  fi
  echo "installing:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

make -s -j"$(nproc)" all
# Debian's python, where python3-psycopg2 installs (not a pyenv python3).
exec /usr/bin/python3 bench/run.py "$@"
