#!/usr/bin/env bash
# Build the `handler` binary for Linux x86-64 (glibc 2.28 or newer) and
# assemble the folder that `func azure functionapp publish` uploads:
#
#   dist/app/host.json
#   dist/app/<Function>/function.json     one folder per function-definitions/<Function>
#   dist/app/handler                      mode 0755
#   dist/app/.funcignore
#   dist/app/local.settings.json          local runs only; never uploaded, no secrets
#
# The build uses cargo-zigbuild and the zig toolchain from PyPI, installed into
# the project-local virtualenv .venv-zig, and its own target dir (target/zig).
#
# Usage: scripts/package.sh
# Env:   HANDLER_BINARY=path  skip the build and package this binary instead
#        PACKAGE_DIR=path     output folder (default dist/app)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

target=x86_64-unknown-linux-gnu
glibc=2.28
out=${PACKAGE_DIR:-dist/app}

build_handler() {
  local venv=.venv-zig requirements=scripts/zig-requirements.txt
  local stamp="$venv/.requirements.sha256" wanted
  wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [[ ! -x "$venv/bin/python" ]]; then
    echo "==> creating $venv" >&2
    python3 -m venv "$venv"
  fi
  if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]]; then
    echo "==> installing $requirements into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
    echo "$wanted" > "$stamp"
  fi

  echo "==> cargo zigbuild --release --target $target.$glibc" >&2
  PATH="$repo/$venv/bin:$PATH" CARGO_TARGET_DIR=target/zig \
    cargo zigbuild --release --locked --bin handler --target "$target.$glibc" >&2
  echo "target/zig/$target/release/handler"
}

binary=${HANDLER_BINARY:-}
if [[ -z "$binary" ]]; then
  binary=$(build_handler)
fi
[[ -f "$binary" ]] || { echo "package: no binary at $binary" >&2; exit 1; }

echo "==> assembling $out"
rm -rf "$out"
mkdir -p "$out"
cp host.json .funcignore "$out/"
for definition in function-definitions/*/function.json; do
  name=$(basename "$(dirname "$definition")")
  mkdir -p "$out/$name"
  cp "$definition" "$out/$name/function.json"
done
install -m 0755 "$binary" "$out/handler"

# For `func start` against Azurite. Core Tools also reads the worker runtime
# from here when publishing. Values are placeholders, never secrets.
cat > "$out/local.settings.json" <<'JSON'
{
  "IsEncrypted": false,
  "Values": {
    "FUNCTIONS_WORKER_RUNTIME": "custom",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "SmsQueue": "UseDevelopmentStorage=true",
    "SMS_QUEUE_NAME": "sms-outbox",
    "SMS_FAILED_QUEUE_NAME": "sms-failed",
    "RUST_LOG": "info"
  }
}
JSON

"$repo/scripts/check-package.sh" "$out"
