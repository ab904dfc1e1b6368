import os
from pathlib import Path

import pytest

import infra_model


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def template() -> infra_model.Template:
    return infra_model.Template(infra_model.parse_bicep(infra_model.MAIN_BICEP))


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared folder; skipped locally when absent, a failure under CI=true."""
    path = infra_model.shared_dir()
    if not (path / "DESIGN.md").is_file():
        message = (
            f"shared folder not found at {path} "
            "(set ACS_SHARED_DIR or place it at ../shared)"
        )
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def design_text(shared: Path) -> str:
    return (shared / "DESIGN.md").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def site(template: infra_model.Template) -> str:
    return template.only("Microsoft.Web/sites")


@pytest.fixture(scope="session")
def app_settings(template: infra_model.Template, site: str) -> dict:
    return template.app_settings(site)


@pytest.fixture(scope="session")
def function_configs() -> dict[str, dict]:
    files = infra_model.function_json_files()
    assert files, "no function-definitions/*/function.json found"
    return {path.parent.name: infra_model.load_json(path) for path in files}
