"""scripts/check-package.sh rejects broken app folders, naming the problem.

The folders are assembled in a temporary directory from the repository's
host.json and function definitions, with system binaries standing in for the
handler. A passing folder needs a glibc-2.28 build (scripts/package.sh), so
only the failures are exercised here.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import infra_model

SCRIPT = infra_model.REPO / "scripts" / "check-package.sh"

pytestmark = pytest.mark.skipif(
    not (shutil.which("readelf") and shutil.which("objdump")),
    reason="binutils (readelf, objdump) not installed",
)


def _app(tmp_path: Path, binary: str | None = "/bin/true") -> Path:
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(infra_model.HOST_JSON, app / "host.json")
    shutil.copy(infra_model.REPO / ".funcignore", app / ".funcignore")
    for definition in infra_model.function_json_files():
        (app / definition.parent.name).mkdir()
        shutil.copy(definition, app / definition.parent.name / "function.json")
    (app / "local.settings.json").write_text(
        '{"IsEncrypted": false, "Values": {"FUNCTIONS_WORKER_RUNTIME": "custom"}}'
    )
    if binary:
        shutil.copy(binary, app / "handler")
        (app / "handler").chmod(0o755)
    return app


def _check(app: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), str(app)], capture_output=True, text=True, timeout=60
    )


def test_a_handler_without_its_run_bit_is_rejected(tmp_path):
    app = _app(tmp_path)
    (app / "handler").chmod(0o644)

    result = _check(app)

    assert result.returncode == 1
    assert "mode 644, expected 755" in result.stderr


def test_a_handler_that_is_no_elf_is_rejected(tmp_path):
    app = _app(tmp_path, binary=None)
    (app / "handler").write_text("#!/bin/sh\nexit 0\n")
    (app / "handler").chmod(0o755)

    result = _check(app)

    assert result.returncode == 1
    assert "not an x86-64 ELF" in result.stderr


def test_a_missing_function_folder_is_rejected(tmp_path):
    app = _app(tmp_path)
    missing = infra_model.function_json_files()[0].parent.name
    shutil.rmtree(app / missing)

    result = _check(app)

    assert result.returncode == 1
    assert f"function folder missing: {missing}/function.json" in result.stderr


def test_a_secret_in_local_settings_is_rejected(tmp_path):
    app = _app(tmp_path)
    (app / "local.settings.json").write_text(
        '{"Values": {"FUNCTIONS_WORKER_RUNTIME": "custom",'
        ' "AzureWebJobsStorage": "AccountName=x;AccountKey=abc"}}'
    )

    result = _check(app)

    assert result.returncode == 1
    assert "contains a key" in result.stderr


def _glibc_versions(binary: str) -> list[tuple[int, ...]]:
    dump = subprocess.run(["objdump", "-T", binary], capture_output=True, text=True).stdout
    found = set(re.findall(r"GLIBC_(\d+(?:\.\d+)+)", dump))
    return sorted(tuple(int(n) for n in version.split(".")) for version in found)


def test_a_handler_needing_newer_glibc_is_rejected(tmp_path):
    system_binary = "/bin/true"
    if not _glibc_versions(system_binary) or _glibc_versions(system_binary)[-1] <= (2, 28):
        pytest.skip("this system's binaries need no glibc newer than 2.28")
    app = _app(tmp_path, binary=system_binary)

    result = _check(app)

    assert result.returncode == 1
    assert "needs glibc newer than 2.28" in result.stderr


def test_a_handler_linking_openssl_is_rejected(tmp_path):
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.skip("no openssl binary to stand in for an OpenSSL-linked handler")
    app = _app(tmp_path, binary=openssl)

    result = _check(app)

    assert result.returncode == 1
    assert "links OpenSSL" in result.stderr
