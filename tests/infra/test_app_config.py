"""host.json and function.json: schema, the DESIGN contract, and the infra they need."""

import re
import tomllib

import pytest
from jsonschema import Draft7Validator

import infra_model

FUNCTION_FILES = infra_model.function_json_files()
FUNCTION_IDS = [path.parent.name for path in FUNCTION_FILES]
QUEUE_BINDING_TYPES = {"queue", "queuetrigger"}
SETTING_REFERENCE = re.compile(r"^%([A-Za-z_][A-Za-z0-9_]*)%$")


def _validator(shared, name):
    schema = infra_model.load_json(shared / "schemas" / name)
    # The SchemaStore function.json schema declares draft-04 but uses "const"
    # (draft-06). Under strict draft-04 "const" is ignored, which makes the sql
    # and mySql branches match every binding and the oneOf fail for all valid
    # files. Draft 7 reads both schemas as their authors meant.
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def _errors(validator, document):
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_host_json_matches_the_schema(shared):
    validator = _validator(shared, "azure-functions-host.schema.json")

    errors = _errors(validator, infra_model.load_json(infra_model.HOST_JSON))

    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("path", FUNCTION_FILES, ids=FUNCTION_IDS)
def test_function_json_matches_the_schema(shared, path):
    validator = _validator(shared, "azure-functions-function.schema.json")

    errors = _errors(validator, infra_model.load_json(path))

    assert not errors, "\n".join(errors)


def test_function_schema_still_rejects_a_bad_binding(shared):
    # Guards the Draft 7 choice above: the validator must not accept anything.
    validator = _validator(shared, "azure-functions-function.schema.json")
    bad = {"bindings": [{"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "open"}]}

    assert _errors(validator, bad)


# ------------------------------------------------------------------ host.json


def test_default_executable_is_exactly_handler():
    host = infra_model.load_json(infra_model.HOST_JSON)

    assert host["customHandler"]["description"]["defaultExecutablePath"] == "handler"


def test_cargo_builds_a_binary_named_handler():
    cargo = tomllib.loads((infra_model.REPO / "Cargo.toml").read_text(encoding="utf-8"))

    assert "handler" in {binary.get("name") for binary in cargo.get("bin", [])}


def test_host_forwards_http_and_has_the_extension_bundle():
    host = infra_model.load_json(infra_model.HOST_JSON)

    assert host["customHandler"]["enableForwardingHttpRequest"] is True
    assert host["extensionBundle"]["id"] == "Microsoft.Azure.Functions.ExtensionBundle"


def _route_prefix():
    host = infra_model.load_json(infra_model.HOST_JSON)
    return host.get("extensions", {}).get("http", {}).get("routePrefix", "api")


# ------------------------------------------------------------ DESIGN contract


def _binding(config, binding_type, direction):
    return [
        binding
        for binding in config["bindings"]
        if binding["type"].lower() == binding_type.lower() and binding["direction"] == direction
    ]


def test_design_lists_the_functions(design_text):
    assert len(infra_model.parse_design_functions(design_text)) >= 8


def test_every_design_function_has_its_trigger_route_and_bindings(design_text, function_configs):
    problems = []
    for row in infra_model.parse_design_functions(design_text):
        name = row["function"]
        config = function_configs.get(name)
        if config is None:
            problems.append(f"{name}: no function-definitions/{name}/function.json")
            continue
        problems += [f"{name}: {p}" for p in _contract_problems(row, config)]

    assert not problems, "\n".join(problems)


def _contract_problems(row, config):
    problems = []
    trigger = row["trigger"].split()
    public = re.findall(r"`([^`]+)`", row["route"])
    if trigger[0] == "HTTP":
        triggers = _binding(config, "httpTrigger", "in")
        if len(triggers) != 1:
            return ["expected one httpTrigger"]
        binding = triggers[0]
        route = public[0].removeprefix(_route_prefix() + "/")
        if binding.get("route") != route:
            problems.append(f"route {binding.get('route')!r}, DESIGN says {route!r}")
        if [m.lower() for m in binding.get("methods", [])] != [trigger[1].lower()]:
            problems.append(f"methods {binding.get('methods')}, DESIGN says {trigger[1]}")
        if binding.get("authLevel") != "function":
            problems.append(f"authLevel {binding.get('authLevel')!r}, must be 'function'")
    elif trigger[0] == "queue":
        triggers = _binding(config, "queueTrigger", "in")
        if len(triggers) != 1 or triggers[0].get("queueName") != public[0]:
            problems.append(f"expected one queueTrigger on {public[0]}")
    else:
        problems.append(f"unknown trigger in DESIGN: {row['trigger']}")
    for binding_type, direction in re.findall(r"`(\w+)` (in|out)", row["bindings"]):
        if not _binding(config, binding_type, direction):
            problems.append(f"no {binding_type} {direction} binding")
    return problems


@pytest.mark.parametrize("path", FUNCTION_FILES, ids=FUNCTION_IDS)
def test_no_http_function_is_anonymous(path):
    config = infra_model.load_json(path)

    for binding in _binding(config, "httpTrigger", "in"):
        assert binding.get("authLevel") == "function"


# ------------------------------------------------- bindings against the infra


def _queue_bindings(function_configs):
    for name, config in function_configs.items():
        for binding in config["bindings"]:
            if binding["type"].lower() in QUEUE_BINDING_TYPES:
                yield name, binding


def test_every_queue_connection_has_a_queue_service_uri_setting(function_configs, app_settings):
    missing = set()
    for name, binding in _queue_bindings(function_configs):
        connection = binding.get("connection")
        if not connection:
            missing.add(f"{name}: binding {binding['name']} names no connection")
        elif f"{connection}__queueServiceUri" not in app_settings:
            missing.add(f"{name}: no app setting {connection}__queueServiceUri")

    assert not missing, "\n".join(sorted(missing))


def _queue_name_expressions(template):
    """Queue resources keyed by their (unresolved) name expression."""
    queues = template.of_type("Microsoft.Storage/storageAccounts/queueServices/queues")
    return {template.body(symbol)["name"]: symbol for symbol in queues}


def test_every_queue_name_setting_names_a_created_queue(
    template, function_configs, app_settings, design_text
):
    defaults = infra_model.parse_design_defaults(design_text)
    queue_names = _queue_name_expressions(template)
    problems = []
    for name, binding in _queue_bindings(function_configs):
        reference = SETTING_REFERENCE.match(binding.get("queueName", ""))
        if not reference:
            problems.append(f"{name}: queueName must be an %APP_SETTING% reference")
            continue
        setting = reference.group(1)
        if setting not in app_settings:
            problems.append(f"{name}: no app setting {setting}")
            continue
        parameter = template.parameter_behind(app_settings[setting])
        if parameter not in queue_names:
            problems.append(f"{name}: {setting} does not name a queue the template creates")
        if template.resolve(parameter) != defaults.get(setting):
            problems.append(
                f"{setting}: template default {template.resolve(parameter)!r}, "
                f"DESIGN default {defaults.get(setting)!r}"
            )

    assert not problems, "\n".join(problems)


def test_every_trigger_queue_has_its_poison_queue(template, function_configs, app_settings):
    created = {
        template.resolve(template.body(symbol)["name"])
        for symbol in template.of_type("Microsoft.Storage/storageAccounts/queueServices/queues")
    }
    for name, binding in _queue_bindings(function_configs):
        if binding["type"].lower() != "queuetrigger":
            continue
        setting = SETTING_REFERENCE.match(binding["queueName"]).group(1)
        queue = template.resolve(app_settings[setting])
        assert f"{queue}-poison" in created, f"{name}: no {queue}-poison queue"


@pytest.mark.parametrize("setting", ["SMS_MAX_SEGMENTS", "RUST_LOG"])
def test_setting_defaults_follow_design(template, app_settings, design_text, setting):
    value = app_settings[setting]
    if isinstance(value, dict) and value.get("function", {}).get("type") == "string":
        value = value["function"]["parameters"]["value_to_convert"]

    assert str(template.resolve(value)) == infra_model.parse_design_defaults(design_text)[setting]
