"""The files around the template: parameters, checkov settings, deploy workflow."""

import re

import infra_model

AZD_PLACEHOLDER = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*(=[^}]*)?\}$")
DEPLOY_WORKFLOW = infra_model.REPO / ".github" / "workflows" / "deploy.yml"


def _parameters_file():
    return infra_model.load_json(infra_model.PARAMETERS_FILE)


def test_parameters_file_is_a_deployment_parameters_document():
    document = _parameters_file()

    assert "deploymentParameters.json" in document["$schema"]
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", document["contentVersion"])
    for name, entry in document["parameters"].items():
        assert isinstance(entry, dict) and set(entry) & {"value", "reference"}, name


def test_parameters_file_names_only_template_parameters(template):
    unknown = set(_parameters_file()["parameters"]) - set(template.parameters)

    assert not unknown, f"not parameters of main.bicep: {sorted(unknown)}"


def test_parameters_file_covers_every_parameter_without_default(template):
    required = {name for name, p in template.parameters.items() if "default" not in p}

    assert required <= set(_parameters_file()["parameters"])


def test_deploy_workflow_overrides_every_azd_placeholder():
    # `az deployment group create -p file` passes "${AZURE_ENV_NAME}" through
    # literally; only azd substitutes it. The workflow must override each one.
    placeholders = [
        name
        for name, entry in _parameters_file()["parameters"].items()
        if AZD_PLACEHOLDER.match(str(entry.get("value", "")))
    ]
    workflow = DEPLOY_WORKFLOW.read_text(encoding="utf-8")
    command = workflow[workflow.index("az deployment group create"):]

    missing = [name for name in placeholders if not re.search(rf"\b{name}=", command)]
    assert not missing, f"deploy.yml does not set: {missing}"


def test_every_checkov_skip_has_a_reason():
    lines = (infra_model.REPO / ".checkov.yaml").read_text(encoding="utf-8").splitlines()
    start = lines.index("skip-check:")
    unexplained = []
    for index in range(start + 1, len(lines)):
        line = lines[index].strip()
        if not line.startswith("- "):
            if line and not line.startswith("#"):
                break
            continue
        inline = "#" in line
        above = lines[index - 1].strip().startswith("#") and len(lines[index - 1].strip()) > 10
        if not (inline or above):
            unexplained.append(line[2:])

    assert not unexplained, f"skip-check without a reason: {unexplained}"
