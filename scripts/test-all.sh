#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a developer's: installs what the tests need
# (Rust crates, Prism for the contract tests, the Python packages of the infrastructure
# checks, the glibc-2.28 build toolchain) and runs every check. Everything stays on
# 127.0.0.1; the shared specs and fixtures are read from ../shared unless ACS_SPECS_DIR and
# FUNCTIONS_FIXTURES_DIR say otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Prism for the contract tests (pinned in tests/contract/package-lock.json)"
npm ci --prefix tests/contract --no-audit --no-fund --loglevel=error

step "Formatting and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

step "Rust tests (unit, in-process API, real binary against Prism and loopback mocks)"
cargo test --locked

step "Infrastructure checks (Bicep syntax and rules, checkov, host.json and function.json schemas)"
bash scripts/check-infra.sh

step "Package the function app for Linux x86_64 (glibc 2.28) and check it"
bash scripts/package.sh
bash scripts/check-package.sh dist/app

step "All checks passed"
