#!/bin/sh
# run-fuzz.sh SECONDS BIN... - run each libFuzzer target for SECONDS, from a
# corpus kept in build/fuzz/corpus/<target>; print "fuzz: N passed, N failed".
set -u
seconds=$1
shift
passed=0
failed=0
for bin in "$@"; do
  name=$(basename "$bin")
  corpus="build/fuzz/corpus/$name"
  mkdir -p "$corpus"
  if "$bin" -max_total_time="$seconds" -max_len=4096 -timeout=5 -rss_limit_mb=1024 \
      -print_final_stats=0 "$corpus" >"build/fuzz/$name.log" 2>&1; then
    passed=$((passed + 1))
    echo "ok     fuzz $name ($(grep -c '' "build/fuzz/$name.log") log lines, ${seconds}s)"
  else
    failed=$((failed + 1))
    echo "FAIL   fuzz $name"
    tail -40 "build/fuzz/$name.log"
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
