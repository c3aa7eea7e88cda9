#!/bin/sh
# test.sh - the README's second command: packages, sanitizer build, every test.
#
# Unit tests (cmocka), short fuzzing runs (libFuzzer), and the integration suites (the real tekup binary over
# HTTP against a real PostgreSQL) run under AddressSanitizer and UBSan.  Each
# part prints "<part>: N passed, N failed"; the last line is the total.
set -u
cd "$(dirname "$0")/.."
scripts/deps.sh test || exit 1

log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed_parts=0

if ! make -s -j"$(nproc)" san >"$log.build" 2>&1; then
  cat "$log.build"
  echo "build: 0 passed, 1 failed" | tee -a "$log"
  failed_parts=1
else
  (make -s -j"$(nproc)" unit; echo "rc=$?" >"$log.unit") 2>&1 | tee -a "$log"
  grep -q "rc=0" "$log.unit" || failed_parts=$((failed_parts + 1))
  # Formatting and static analysis are part of passing.
  if make -s lint >"$log.lint" 2>&1; then echo "lint: 1 passed, 0 failed" | tee -a "$log"
  else cat "$log.lint"; echo "lint: 0 passed, 1 failed" | tee -a "$log"; fi
  rm -f "$log.lint"
  # The parsers of untrusted input under libFuzzer, briefly (make fuzz for longer).
  (make -s fuzz FUZZ_SECONDS=10; echo "rc=$?" >"$log.unit") 2>&1 | tee -a "$log"
  grep -q "rc=0" "$log.unit" || failed_parts=$((failed_parts + 1))
  (/usr/bin/python3 tests/integration/run.py --binary build/san/tekup "$@"; echo "rc=$?" >"$log.int") 2>&1 | tee -a "$log"
  grep -q "rc=0" "$log.int" || failed_parts=$((failed_parts + 1))
  # The same suites again, with requests going through a real PgBouncer in
  # transaction pooling mode (unnamed statements).
  (/usr/bin/python3 tests/integration/run.py --binary build/san/tekup --workdir build/test-pgbouncer --pgbouncer "$@"; echo "rc=$?" >"$log.int") 2>&1 | tee -a "$log"
  grep -q "rc=0" "$log.int" || failed_parts=$((failed_parts + 1))
fi
rm -f "$log.build" "$log.unit" "$log.int"

passed=0
failed=0
for pair in $(sed -n 's/^[a-z]*: \([0-9]*\) passed, \([0-9]*\) failed$/\1:\2/p' "$log"); do
  passed=$((passed + ${pair%%:*}))
  failed=$((failed + ${pair##*:}))
done
# A part that failed without counting a failure (a crash) still fails the run.
if [ "$failed_parts" -gt 0 ] && [ "$failed" -eq 0 ]; then
  failed=$failed_parts
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
