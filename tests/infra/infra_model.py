"""Reading the deployable side of the repository for the infra tests.

pycep turns Bicep into a JSON-like tree. In that tree a string literal and a
bare identifier look the same ('custom' and custom both become "custom"), so
`resolve` looks a plain string up among the parameters and variables first and
treats it as a literal only when it names neither.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MAIN_BICEP = INFRA / "main.bicep"
PARAMETERS_FILE = INFRA / "main.parameters.json"
HOST_JSON = REPO / "host.json"
FUNCTION_DEFINITIONS = REPO / "function-definitions"

ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"

# Built-in Azure role definition ids this project may grant, with their names.
PINNED_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "09976791-48a7-449e-bb21-39d1a415f350": "Communication and Email Service Owner",
}

GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def shared_dir() -> Path:
    """The team's read-only shared folder: $ACS_SHARED_DIR or <repo>/../shared."""
    return Path(os.environ.get("ACS_SHARED_DIR") or REPO.parent / "shared")


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def function_json_files() -> list[Path]:
    return sorted(FUNCTION_DEFINITIONS.glob("*/function.json"))


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def parse_bicep(path: Path) -> dict:
    from pycep import BicepParser

    return BicepParser().parse(text=path.read_text(encoding="utf-8"))


class Template:
    """One parsed Bicep file with lookups the rule tests share."""

    def __init__(self, ast: dict):
        self.ast = ast
        self.parameters: dict = ast.get("parameters") or {}
        self.variables: dict = ast.get("variables") or {}
        self.resources: dict = ast.get("resources") or {}
        self.outputs: dict = ast.get("outputs") or {}

    # ----------------------------------------------------------- resources

    def body(self, symbol: str) -> dict:
        """The resource's `{name, properties, ...}` block, conditions unwrapped."""
        config = self.resources[symbol]["config"]
        while "condition" in config and "config" in config:
            config = config["config"]
        if "name" not in config:
            raise AssertionError(f"resource {symbol}: unsupported shape (loop?)")
        return config

    def condition(self, symbol: str) -> Any:
        return self.resources[symbol]["config"].get("condition")

    def of_type(self, resource_type: str) -> list[str]:
        return [
            symbol
            for symbol, resource in self.resources.items()
            if resource["type"].lower() == resource_type.lower()
        ]

    def only(self, resource_type: str) -> str:
        symbols = self.of_type(resource_type)
        assert len(symbols) == 1, f"expected one {resource_type}, found {symbols}"
        return symbols[0]

    # ---------------------------------------------------------- app settings

    def app_settings(self, site_symbol: str) -> dict[str, Any]:
        site_config = self.body(site_symbol)["properties"].get("siteConfig") or {}
        entries = site_config.get("appSettings") or []
        settings: dict[str, Any] = {}
        for entry in entries:
            name = entry["name"]
            assert name not in settings, f"app setting {name} is set twice"
            settings[name] = entry.get("value")
        return settings

    # ------------------------------------------------------------ resolving

    def resolve(self, value: Any) -> Any:
        """Best-effort constant value of an expression; None when unknown."""
        if isinstance(value, bool) or isinstance(value, (int, float)):
            return value
        if isinstance(value, str):
            if value in self.parameters:
                return self.resolve(self.parameters[value].get("default"))
            if value in self.variables:
                return self.resolve(self.variables[value]["value"])
            return INTERPOLATION.sub(self._interpolate, value)
        path = access_path(value)
        if path is not None:
            # Only constants such as roles.storageBlobDataOwner resolve.
            container = self.resolve(path[0])
            for key in path[1:]:
                if not isinstance(container, dict):
                    return None
                container = self.resolve(container.get(key))
            return container
        return value

    def _interpolate(self, match: re.Match) -> str:
        resolved = self.resolve(match.group(1))
        if isinstance(resolved, (str, int)) and not isinstance(resolved, bool):
            return str(resolved)
        return match.group(0)

    def parameter_behind(self, value: Any) -> str | None:
        """The parameter a value is (directly or through variables), if any."""
        if isinstance(value, str):
            if value in self.parameters:
                return value
            if value in self.variables:
                return self.parameter_behind(self.variables[value]["value"])
        return None


def access_path(value: Any) -> list[str] | None:
    """`a.b.c` as ["a", "b", "c"], or None when the value is no property chain."""
    if not isinstance(value, dict):
        return None
    operator = value.get("operator")
    if not operator or operator.get("type") != "property_accessor":
        return None
    operands = operator["operands"]
    head, tail = operands["operand_1"], operands["operand_2"]
    rest = access_path(tail) if isinstance(tail, dict) else [tail]
    if rest is None or not isinstance(head, str):
        return None
    return [head, *rest]


def strings_in(value: Any) -> Iterator[str]:
    """Every string (keys included) inside a parsed expression or block."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def parse_design_functions(design_text: str) -> list[dict[str, str]]:
    """Rows of the function table in DESIGN.md section 1."""
    section = design_text.split("## 1.", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 5 or not cells[0].startswith("`"):
            continue
        rows.append(
            {
                "function": cells[0].strip("`"),
                "trigger": cells[1],
                "route": cells[2],
                "bindings": cells[3],
            }
        )
    return rows


def parse_design_defaults(design_text: str) -> dict[str, str]:
    """Variable -> default from the configuration table in DESIGN.md section 2."""
    section = design_text.split("## 2.", 1)[1].split("\n## ", 1)[0]
    defaults = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            default = re.fullmatch(r"`([^`]*)`", cells[2])
            if default:
                defaults[cells[0].strip("`")] = default.group(1)
    return defaults
