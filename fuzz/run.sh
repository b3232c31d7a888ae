#!/bin/sh
# Runs one fuzz target until its process has used MINUTES of CPU time (not
# wall time: it runs at nice 19 beside other work), then stops it with
# SIGINT so libFuzzer prints its final figures.
#
#   fuzz/run.sh TARGET [MINUTES] [LOGDIR]
#
# Builds the target first (cargo +nightly fuzz build, no sanitizer: the
# code is safe Rust, and the CPU goes to executions; debug assertions and
# overflow checks are on). New interesting inputs go to fuzz/corpus/TARGET
# (seeded from fuzz/seeds/TARGET, see make-seeds.py), crashes to
# fuzz/artifacts/TARGET/. The log is LOGDIR/TARGET-HHMMSS.log (default
# /tmp/cloudauth-fuzz); its last lines are the figures fuzz/README.md
# records. A later run goes on from the corpus: a target's CPU time may be
# spent in several runs.
set -eu
target=$1
minutes=${2:-30}
logdir=${3:-/tmp/cloudauth-fuzz}
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."

case $target in
  frames) max_len=20000 ;;  # beyond the 8 KiB frame limit
  *) max_len=8192 ;;
esac

[ -d "fuzz/seeds/$target" ] || python3 fuzz/make-seeds.py >/dev/null
cargo +nightly fuzz build -s none "$target" >/dev/null
mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target" "$logdir"
# A copy, so that rebuilding while it runs does not touch the running binary.
bin=$logdir/$target.bin
cp "${CARGO_TARGET_DIR:-fuzz/target}/x86_64-unknown-linux-gnu/release/$target" "$bin"
log=$logdir/$target-$(date +%H%M%S).log

nice -n 19 "$bin" "fuzz/corpus/$target" "fuzz/seeds/$target" \
  -max_len=$max_len -timeout=10 -rss_limit_mb=2048 -max_total_time=86400 \
  -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$target/" >"$log" 2>&1 &
pid=$!
echo "$pid" >"$logdir/$target.pid"

ticks=$(getconf CLK_TCK)
limit=$((minutes * 60 * ticks))
cpu=0
while kill -0 "$pid" 2>/dev/null; do
  # utime + stime of the fuzzer process, in clock ticks (fields 14 and 15).
  cpu=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo "$cpu")
  if [ "$cpu" -ge "$limit" ]; then
    kill -INT "$pid"
    break
  fi
  sleep 10
done
wait "$pid" && status=0 || status=$?
echo "cpu_seconds=$((cpu / ticks)) exit=$status" >>"$log"
echo "$target: $((cpu / ticks)) CPU seconds, exit $status; log $log"
