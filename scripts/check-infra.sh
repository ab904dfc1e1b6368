#!/usr/bin/env bash
# Offline checks of the deployable side: Bicep syntax and project rules
# (pytest in tests/infra), host.json/function.json against the shared schemas,
# and a checkov security scan of infra/. Needs only PyPI.
#
# Usage: scripts/check-infra.sh [extra pytest args]
# Env:   ACS_SHARED_DIR  shared folder (default <repo>/../shared); when it is
#                        missing the checks that need it skip, or fail if CI=true.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

venv=.venv-infra
requirements=tests/infra/requirements.txt
stamp="$venv/.requirements.sha256"
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)

if [[ ! -x "$venv/bin/python" ]]; then
  echo "==> creating $venv"
  python3 -m venv "$venv"
fi
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]]; then
  echo "==> installing $requirements into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$wanted" > "$stamp"
fi

failures=()

echo "==> pytest tests/infra"
if ! "$venv/bin/python" -m pytest tests/infra -q -p no:cacheprovider "$@"; then
  failures+=("pytest tests/infra failed")
fi

echo "==> checkov -d infra --framework bicep"
# Quiet, offline: no Bridgecrew platform mapping, no version check.
export BC_SKIP_MAPPING=TRUE CHECKOV_SKIP_VERSION_CHECK=1
set +e
report=$("$venv/bin/checkov" -d infra --framework bicep --config-file .checkov.yaml 2>&1)
status=$?
set -e
printf '%s\n' "$report"
if (( status != 0 )); then
  failures+=("checkov failed (exit $status)")
fi
# checkov exits 0 on a file it cannot parse; a parse error must fail too.
if grep -Eq 'Parsing errors: [1-9]' <<<"$report"; then
  failures+=("checkov could not parse a Bicep file")
fi

if (( ${#failures[@]} )); then
  printf 'check-infra: %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "check-infra: all checks passed"
