#!/usr/bin/env bash
# Check an assembled app folder before it is published:
#   - host.json and every function folder of function-definitions/ are there, unchanged;
#   - the executable named by host.json is an x86-64 ELF with mode 0755;
#   - it needs no GLIBC symbol version newer than 2.28;
#   - it does not link OpenSSL (libssl/libcrypto);
#   - local.settings.json holds no key.
# Every problem is listed; the exit status is 1 if there is any.
#
# Usage: scripts/check-package.sh [app-dir]   (default dist/app)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
app=${1:-$repo/dist/app}
max_glibc=2.28
problems=()
problem() { problems+=("$1"); }

for tool in readelf objdump; do
  command -v "$tool" >/dev/null || { echo "check-package: $tool not found (install binutils)" >&2; exit 2; }
done
[[ -d "$app" ]] || { echo "check-package: no folder $app (run scripts/package.sh)" >&2; exit 1; }

# --- layout ---------------------------------------------------------------
if ! cmp -s "$repo/host.json" "$app/host.json"; then
  problem "host.json missing or different from the repository's"
fi
for definition in "$repo"/function-definitions/*/function.json; do
  name=$(basename "$(dirname "$definition")")
  if [[ ! -f "$app/$name/function.json" ]]; then
    problem "function folder missing: $name/function.json"
  elif ! cmp -s "$definition" "$app/$name/function.json"; then
    problem "$name/function.json differs from function-definitions/$name"
  fi
done
[[ -f "$app/.funcignore" ]] || problem ".funcignore missing"

# --- the executable -------------------------------------------------------
executable=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["customHandler"]["description"]["defaultExecutablePath"])' "$app/host.json" 2>/dev/null || true)
if [[ "$executable" != "handler" ]]; then
  problem "host.json defaultExecutablePath is '${executable}', expected 'handler'"
  executable=handler
fi
binary="$app/$executable"

if [[ ! -f "$binary" ]]; then
  problem "executable missing: $executable"
else
  mode=$(stat -c '%a' "$binary")
  if [[ "$mode" != 755 ]]; then
    problem "$executable has mode $mode, expected 755 (run bit lost?)"
  fi

  header=$(readelf -h "$binary" 2>/dev/null || true)
  if ! grep -q 'Class:[[:space:]]*ELF64' <<<"$header" \
    || ! grep -q 'Machine:[[:space:]]*Advanced Micro Devices X86-64' <<<"$header"; then
    problem "$executable is not an x86-64 ELF executable"
  else
    # Versions come from the dynamic symbols and from the version-needs table.
    versions=$( { objdump -T "$binary"; readelf -V "$binary"; } 2>/dev/null \
      | grep -o 'GLIBC_[0-9][0-9.]*[0-9]' | sed 's/^GLIBC_//' | sort -Vu || true)
    newest=$(tail -n 1 <<<"$versions")
    too_new=()
    for version in $versions; do
      if [[ "$(printf '%s\n%s\n' "$version" "$max_glibc" | sort -V | tail -n 1)" != "$max_glibc" ]]; then
        too_new+=("GLIBC_$version")
      fi
    done
    if (( ${#too_new[@]} )); then
      problem "$executable needs glibc newer than $max_glibc: ${too_new[*]}"
    fi

    needed=$(readelf -d "$binary" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    if grep -Eq '^lib(ssl|crypto)\.so' <<<"$needed"; then
      problem "$executable links OpenSSL: $(grep -E '^lib(ssl|crypto)\.so' <<<"$needed" | paste -sd ' ')"
    fi
  fi
fi

# --- local settings -------------------------------------------------------
settings="$app/local.settings.json"
if [[ ! -f "$settings" ]]; then
  problem "local.settings.json missing"
else
  if ! python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))["Values"]; sys.exit(v.get("FUNCTIONS_WORKER_RUNTIME") != "custom")' "$settings" 2>/dev/null; then
    problem "local.settings.json must set Values.FUNCTIONS_WORKER_RUNTIME to custom"
  fi
  if grep -Eiq 'AccountKey=|accesskey=|SharedAccessKey|SharedAccessSignature|InstrumentationKey=' "$settings"; then
    problem "local.settings.json contains a key; use placeholders only"
  fi
fi

if (( ${#problems[@]} )); then
  printf 'check-package: %s\n' "${problems[@]}" >&2
  echo "check-package: $app is NOT deployable (${#problems[@]} problem(s))" >&2
  exit 1
fi
echo "check-package: $app is deployable (handler: x86-64 ELF, mode 755, glibc <= ${newest:-static} needed, no OpenSSL)"
