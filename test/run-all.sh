#!/bin/bash
# The whole test suite: lint, Rust unit and integration tests, then the
# end-to-end tests against a real ejabberd. Usage: test/run-all.sh
set -u
cd "$(dirname "$0")/.." || exit 1
export CARGO_TERM_COLOR=never
step() { printf '\n==== %s\n' "$*"; }
fail() { echo "FAILED: $*"; echo "0 passed, 1 failed"; exit 1; }

step "dependencies"
test/lib/install-deps.sh || fail "cannot install test dependencies"

step "format and lint"
cargo fmt --all -- --check || fail "cargo fmt --check (run cargo fmt --all)"
cargo clippy --workspace --all-targets --locked -- -D warnings || fail "cargo clippy"

step "Rust tests (release profile, shared with the e2e binaries)"
cargo build --release --workspace --locked || fail "cargo build --release"
cargo test --release --workspace --locked 2>&1 | tee /tmp/cloudauth-cargo-test.$$ ; rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] || fail "cargo test"
unit_passed=$(awk '/^test result: ok\./ { n += $4 } END { print n + 0 }' /tmp/cloudauth-cargo-test.$$)
rm -f /tmp/cloudauth-cargo-test.$$

step "end-to-end tests (real ejabberd on loopback)"
test/run-e2e.sh 2>&1 | tee /tmp/cloudauth-e2e.$$ ; rc=${PIPESTATUS[0]}
e2e=$(grep -E '^[0-9]+ passed, [0-9]+ failed' /tmp/cloudauth-e2e.$$ | tail -n1)
rm -f /tmp/cloudauth-e2e.$$
e2e_passed=${e2e%% passed*}; e2e_failed=${e2e#*, }; e2e_failed=${e2e_failed%% failed*}
[ -n "$e2e" ] || { e2e_passed=0; e2e_failed=1; }
[ "$rc" = 0 ] || [ "$e2e_failed" != 0 ] || e2e_failed=1

step "summary"
echo "Rust tests passed: ${unit_passed:-0}; end-to-end: $e2e"
echo "$(( ${unit_passed:-0} + e2e_passed )) passed, $e2e_failed failed"
[ "$e2e_failed" = 0 ]
