#!/usr/bin/env bash
# The README's test command: installs what the tests need when it is missing,
# then runs the format check, clippy, the workflow lint, and every test.
# Database tests start their own throwaway PostgreSQL and MariaDB servers.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"

step() { echo "==> $*" >&2; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "actionlint"
actionlint .github/workflows/ci.yml

step "cargo test"
# A missing database server is a failure, never a skip, when CI is set.
cargo test --workspace --quiet -- --test-threads "${DBBRIDGE_TEST_THREADS:-4}"
