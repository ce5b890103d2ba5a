#!/usr/bin/env bash
# Runs every test on a fresh Debian machine: installs what the tests need (Prometheus with
# promtool, Alertmanager, chromium with chromedriver, ClickHouse), then formatting, lints, unit tests and
# the end-to-end suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
# kubectl checks the fake API server's fidelity; Debian packages it as kubernetes-client.
command -v kubectl >/dev/null || missing+=(kubernetes-client)
# The history page is tested in a real browser: headless chromium through chromedriver.
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
# Shipping is tested against a real ClickHouse (18.16 on Debian 12).
command -v clickhouse-server >/dev/null || missing+=(clickhouse-server)
command -v clickhouse-client >/dev/null || missing+=(clickhouse-client)
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing ${missing[*]} from Debian."
  # Keep apt from starting the daemons on their default ports.
  if [ ! -x /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod +x /usr/sbin/policy-rc.d
  fi
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# The benchmarks must keep running; their quick mode in a debug build checks that, not numbers.
cargo test --locked --bench bench -- --quick
cargo test --locked --lib --bins --tests
