#!/bin/bash
# The whole test suite: lint, Rust tests, the Erlang module's EUnit tests,
# then the end-to-end tests against real ejabberd, Prosody, saslauthd and
# Postfix tools on loopback. Usage: test/run-all.sh
set -u
cd "$(dirname "$0")/.." || exit 1
export CARGO_TERM_COLOR=never
step() { printf '\n==== %s\n' "$*"; }
fail() { echo "FAILED: $*"; echo "0 passed, 1 failed"; exit 1; }
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT

step "dependencies"
test/lib/install-deps.sh || fail "cannot install test dependencies"

step "format and lint"
cargo fmt --all -- --check || fail "cargo fmt --check (run cargo fmt --all)"
cargo clippy --workspace --all-targets --locked -- -D warnings || fail "cargo clippy"

step "Rust unit and integration tests"
cargo test --workspace --locked 2>&1 | tee "$LOGS/cargo-test"; rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] || fail "cargo test"
rust_passed=$(awk '/^test result: ok\./ { n += $4 } END { print n + 0 }' "$LOGS/cargo-test")

step "release build (binaries for the end-to-end tests, the demo and the benchmarks)"
cargo build --release --workspace --locked || fail "cargo build --release"

step "Erlang module: rebar3 compile (with the NIF) and EUnit"
rebar3 compile || fail "rebar3 compile"
rebar3 eunit 2>&1 | tee "$LOGS/eunit"; rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] || fail "rebar3 eunit"
eunit_passed=$(sed -n 's/.*All \([0-9]*\) tests passed.*/\1/p' "$LOGS/eunit" | tail -n1)
[ -n "$eunit_passed" ] || fail "rebar3 eunit ran no test"

step "end-to-end tests (real ejabberd, Prosody, saslauthd, Postfix on loopback)"
test/run-e2e.sh 2>&1 | tee "$LOGS/e2e"; rc=${PIPESTATUS[0]}
e2e=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOGS/e2e" | tail -n1)
e2e_passed=${e2e%% passed*}; e2e_failed=${e2e#*, }; e2e_failed=${e2e_failed%% failed*}
[ -n "$e2e" ] || { e2e_passed=0; e2e_failed=1; }
[ "$rc" = 0 ] || [ "$e2e_failed" != 0 ] || e2e_failed=1

step "summary"
echo "Rust tests passed: $rust_passed; EUnit: $eunit_passed; end-to-end: $e2e"
echo "$(( rust_passed + eunit_passed + e2e_passed )) passed, $e2e_failed failed"
[ "$e2e_failed" = 0 ]
