"""Project rules for infra/main.bicep, asserted on the pycep syntax tree."""

import re

import pytest

import infra_model
from infra_model import PINNED_ROLES, ROLE_ASSIGNMENT, access_path, strings_in

REQUIRED_APP_SETTINGS = {
    "AzureWebJobsStorage__accountName",
    "SmsQueue__queueServiceUri",
    "ACS_ENDPOINT",
    "SMS_FROM",
    "SMS_QUEUE_NAME",
    "SMS_FAILED_QUEUE_NAME",
    "SMS_MAX_SEGMENTS",
    "RUST_LOG",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}

# Flex Consumption rejects or ignores these, or they would carry a secret.
FORBIDDEN_APP_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "ACS_CONNECTION_STRING",
    "AzureWebJobsStorage",
    "APPINSIGHTS_INSTRUMENTATIONKEY",
}
FORBIDDEN_APP_SETTING_PREFIXES = ("WEBSITE_CONTENT",)

# Text that only appears where a key or a secret-bearing connection string is.
SECRET_PATTERNS = [
    r"AccountKey\s*=",
    r"accesskey\s*=",
    r"SharedAccessKey",
    r"SharedAccessSignature",
    r"InstrumentationKey\s*=",
    r"DefaultEndpointsProtocol\s*=",
    r"\blistKeys\s*\(",
    r"\blistConnectionStrings\s*\(",
    r"\.listKeys\b",
]

REQUIRED_APP_ROLES = {
    ("Storage Blob Data Owner", "Microsoft.Storage/storageAccounts"),
    ("Storage Queue Data Contributor", "Microsoft.Storage/storageAccounts"),
    ("Monitoring Metrics Publisher", "Microsoft.Insights/components"),
    ("Communication and Email Service Owner", "Microsoft.Communication/communicationServices"),
}


# ------------------------------------------------------------------ hosting


def test_plan_is_flex_consumption_fc1_on_linux(template):
    plan = template.body(template.only("Microsoft.Web/serverfarms"))

    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True


def test_site_is_a_linux_function_app_on_the_flex_plan(template, site):
    body = template.body(site)

    assert body["kind"] == "functionapp,linux"
    plan_symbol = template.only("Microsoft.Web/serverfarms")
    assert access_path(body["properties"]["serverFarmId"]) == [plan_symbol, "id"]


def test_site_has_a_system_assigned_identity(template, site):
    assert template.body(site)["identity"] == {"type": "SystemAssigned"}


def test_runtime_is_custom_1_0(template, site):
    config = template.body(site)["properties"]["functionAppConfig"]

    assert config["runtime"] == {"name": "custom", "version": "1.0"}


def test_deployment_storage_is_a_blob_container_reached_with_the_identity(template, site):
    storage = template.body(site)["properties"]["functionAppConfig"]["deployment"]["storage"]
    account = template.only("Microsoft.Storage/storageAccounts")
    container = template.body(
        template.only("Microsoft.Storage/storageAccounts/blobServices/containers")
    )

    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {"type": "SystemAssignedIdentity"}
    assert storage["value"].startswith(f"${{{account}.properties.primaryEndpoints.blob}}")
    container_name = template.resolve(container["name"])
    assert template.resolve(storage["value"]).endswith(container_name)
    assert len(container_name) <= 63 and container_name == container_name.lower()


def _parameter_bounds(template, value):
    parameter = template.parameter_behind(value)
    decorators = template.parameters[parameter]["decorators"] if parameter else []
    return {decorator["type"]: decorator["argument"] for decorator in decorators}


def test_scale_settings_stay_within_flex_limits(template, site):
    scale = template.body(site)["properties"]["functionAppConfig"]["scaleAndConcurrency"]

    memory = template.resolve(scale["instanceMemoryMB"])
    assert memory in (512, 2048, 4096)
    allowed = _parameter_bounds(template, scale["instanceMemoryMB"]).get("allowed", [memory])
    assert set(allowed) <= {512, 2048, 4096}

    instances = template.resolve(scale["maximumInstanceCount"])
    assert 40 <= instances <= 1000
    bounds = _parameter_bounds(template, scale["maximumInstanceCount"])
    assert 40 <= bounds.get("min_value", 40) and bounds.get("max_value", 1000) <= 1000


def test_site_is_https_only_with_tls_1_2_and_no_ftp(template, site):
    properties = template.body(site)["properties"]

    assert properties["httpsOnly"] is True
    assert properties["siteConfig"]["minTlsVersion"] == "1.2"
    assert properties["siteConfig"]["ftpsState"] == "Disabled"


def test_site_sets_no_linux_fx_version(template, site):
    names = {text.lower() for text in strings_in(template.body(site))}

    assert "linuxfxversion" not in names


# ------------------------------------------------------------- app settings


def test_required_app_settings_are_present(app_settings):
    missing = REQUIRED_APP_SETTINGS - set(app_settings)

    assert not missing, f"missing app settings: {sorted(missing)}"


def test_forbidden_app_settings_are_absent(app_settings):
    forbidden = {name.lower() for name in FORBIDDEN_APP_SETTINGS}
    found = [
        name
        for name in app_settings
        if name.lower() in forbidden
        or name.upper().startswith(FORBIDDEN_APP_SETTING_PREFIXES)
    ]

    assert not found, f"forbidden app settings: {found}"


def test_app_settings_point_at_the_deployed_resources(template, app_settings):
    storage = template.only("Microsoft.Storage/storageAccounts")
    insights = template.only("Microsoft.Insights/components")
    acs = template.only("Microsoft.Communication/communicationServices")

    assert access_path(app_settings["AzureWebJobsStorage__accountName"]) == [storage, "name"]
    assert access_path(app_settings["SmsQueue__queueServiceUri"]) == [
        storage, "properties", "primaryEndpoints", "queue",
    ]
    assert app_settings["ACS_ENDPOINT"] == f"https://${{{acs}.properties.hostName}}"
    assert access_path(app_settings["APPLICATIONINSIGHTS_CONNECTION_STRING"]) == [
        insights, "properties", "ConnectionString",
    ]
    assert app_settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD"


def test_sender_comes_from_a_parameter_that_may_stay_empty(template, app_settings):
    parameter = template.parameter_behind(app_settings["SMS_FROM"])

    assert parameter, "SMS_FROM must come from a parameter"
    assert template.parameters[parameter].get("default") == ""


def test_no_key_or_secret_connection_string_in_infra_files():
    files = [*infra_model.INFRA.rglob("*.bicep"), *infra_model.INFRA.rglob("*.json")]
    found = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        for pattern in SECRET_PATTERNS:
            for match in re.finditer(pattern, text, flags=re.IGNORECASE):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.name}:{line}: {match.group(0)}")

    assert not found, "key material or key lookups: " + "; ".join(found)


# ------------------------------------------------------ keyless data stores


def test_storage_accepts_only_entra_tokens_over_tls_1_2(template):
    properties = template.body(template.only("Microsoft.Storage/storageAccounts"))["properties"]

    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["defaultToOAuthAuthentication"] is True


def test_app_insights_is_workspace_based_with_local_auth_disabled(template):
    properties = template.body(template.only("Microsoft.Insights/components"))["properties"]
    workspace = template.only("Microsoft.OperationalInsights/workspaces")

    assert properties["DisableLocalAuth"] is True
    assert access_path(properties["WorkspaceResourceId"]) == [workspace, "id"]


def test_communication_services_is_global_with_a_data_location_parameter(template):
    body = template.body(template.only("Microsoft.Communication/communicationServices"))

    assert body["location"] == "global"
    assert template.parameter_behind(body["properties"]["dataLocation"])


# --------------------------------------------------------- role assignments


def _role_assignments(template):
    symbols = template.of_type(ROLE_ASSIGNMENT)
    assert symbols, "no role assignments"
    return symbols


def _role_guid(template, symbol):
    role_id = template.body(symbol)["properties"]["roleDefinitionId"]
    if isinstance(role_id, dict) and "function" in role_id:
        arguments = role_id["function"]["parameters"]
        role_id = arguments.get("resource_name_1")
    resolved = template.resolve(role_id)
    match = infra_model.GUID.search(resolved) if isinstance(resolved, str) else None
    assert match, f"{symbol}: role definition id does not resolve to a GUID"
    return match.group(0).lower()


def _scope_type(template, symbol):
    scope = template.body(symbol).get("scope")
    assert scope in template.resources, f"{symbol}: scope must name a resource"
    return template.resources[scope]["type"]


def _grants_to_app(template, symbol, site):
    principal = template.body(symbol)["properties"]["principalId"]
    return access_path(principal) == [site, "identity", "principalId"]


def test_every_role_is_a_pinned_built_in_role(template):
    unknown = {}
    for symbol in _role_assignments(template):
        guid = _role_guid(template, symbol)
        if guid not in PINNED_ROLES:
            unknown[symbol] = guid

    assert not unknown, f"role ids not in the pinned table: {unknown}"


def test_role_variable_names_match_the_pinned_role_names(template):
    # The variable key must describe the role it holds (catches swapped GUIDs).
    expected = {
        "storageBlobDataOwner": "Storage Blob Data Owner",
        "storageQueueDataContributor": "Storage Queue Data Contributor",
        "monitoringMetricsPublisher": "Monitoring Metrics Publisher",
        "communicationServiceOwner": "Communication and Email Service Owner",
    }
    roles = template.resolve("roles")

    assert {key: PINNED_ROLES.get(str(value).lower()) for key, value in roles.items()} == expected


def test_every_role_assignment_has_a_stable_name_and_principal_type(template, site):
    for symbol in _role_assignments(template):
        resource = template.resources[symbol]
        body = template.body(symbol)
        assert resource["api_version"] == "2022-04-01", symbol
        name = body["name"]
        assert isinstance(name, dict) and name["function"]["type"] == "guid", symbol
        assert len([v for v in name["function"]["parameters"].values() if v]) == 3, symbol
        principal_type = body["properties"].get("principalType")
        assert principal_type, f"{symbol}: principalType not set"
        if _grants_to_app(template, symbol, site):
            assert principal_type == "ServicePrincipal", symbol


def test_app_identity_holds_the_four_required_roles_unconditionally(template, site):
    granted = {
        (PINNED_ROLES.get(_role_guid(template, symbol)), _scope_type(template, symbol))
        for symbol in _role_assignments(template)
        if _grants_to_app(template, symbol, site) and template.condition(symbol) is None
    }

    missing = REQUIRED_APP_ROLES - granted
    assert not missing, f"the app lacks: {sorted(missing)}"


def test_developer_gets_the_same_data_roles_only_when_named(template, site):
    parameter = "developerPrincipalId"
    assert template.parameters[parameter].get("default") == ""
    developer = [
        symbol
        for symbol in _role_assignments(template)
        if template.body(symbol)["properties"]["principalId"] == parameter
    ]
    app_roles = {
        (_role_guid(template, symbol), _scope_type(template, symbol))
        for symbol in _role_assignments(template)
        if _grants_to_app(template, symbol, site)
    }

    assert {(_role_guid(template, s), _scope_type(template, s)) for s in developer} == app_roles
    for symbol in developer:
        condition = template.condition(symbol)
        assert condition is not None and parameter in strings_in(condition), symbol


# ------------------------------------------------------------------ outputs


@pytest.mark.parametrize(
    "name",
    ["AZURE_FUNCTION_APP_NAME", "ACS_ENDPOINT", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_RESOURCE_GROUP"],
)
def test_output_is_declared(template, name):
    assert name in template.outputs
