#!/bin/sh
# deps.sh - install the Debian 12 packages tekup needs, if any are missing.
#
#   scripts/deps.sh run    what building and serving needs
#   scripts/deps.sh test   that, plus what the test suite needs
#
# As root it installs them with apt-get; otherwise it prints the exact
# command to run and fails.
set -eu

RUN_PKGS="gcc make libc6-dev libmicrohttpd-dev libjansson-dev libsodium-dev libpq-dev libcurl4-openssl-dev \
postgresql-15 postgresql-client-15"
TEST_PKGS="libcmocka-dev python3 python3-psycopg2 python3-aiosmtpd curl pgbouncer nginx openssl clang libclang-rt-14-dev clang-format cppcheck"

case "${1:-run}" in
  run) want="$RUN_PKGS" ;;
  test) want="$RUN_PKGS $TEST_PKGS" ;;
  *) echo "usage: scripts/deps.sh run|test" >&2; exit 2 ;;
esac

missing=""
for pkg in $want; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $pkg" ;;
  esac
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "tekup needs these Debian packages:$missing" >&2
  echo "install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y$missing" >&2
  exit 1
fi

echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
