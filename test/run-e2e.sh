#!/bin/bash
# Runs every end-to-end test in test/e2e/ and sums their closing lines.
# Binaries come from target/release, or $CARGO_TARGET_DIR/release (override
# with CLOUDAUTH_BIN_DIR).
set -u
cd "$(dirname "$0")/.." || exit 1
passed=0
failed=0
for t in test/e2e/*.sh; do
    echo "# ---- $t"
    start=$(date +%s)
    out=$(bash "$t" 2>&1)
    rc=$?
    echo "$out"
    line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n1)
    if [ -z "$line" ]; then
        echo "not ok - $t ended without a result line (exit $rc)"
        failed=$((failed + 1))
        continue
    fi
    p=${line%% passed*}
    f=${line#*, }
    f=${f%% failed*}
    passed=$((passed + p))
    failed=$((failed + f))
    [ "$rc" = 0 ] || [ "$f" != 0 ] || failed=$((failed + 1))
    echo "# $t: $line in $(( $(date +%s) - start )) s"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
