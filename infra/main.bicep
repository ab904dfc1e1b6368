// Infrastructure for the SMS and identity custom handler (Rust) on Azure Functions
// Flex Consumption. Every connection is identity-based: the function app's
// system-assigned managed identity holds data roles on storage, Application
// Insights and Communication Services, and no key or connection string with a
// secret is stored anywhere.
//
// Deploy with `az deployment group create -g <rg> -f infra/main.bicep
// -p infra/main.parameters.json ...` or `azd provision` (see the Deploy section of README.md).
// Keep this file free of registry modules, lambdas, deployer() and @export():
// the offline checks (scripts/check-infra.sh) must be able to parse it.

targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd AZURE_ENV_NAME); seeds resource names and tags.')
param environmentName string

@description('Azure region for every regional resource.')
param location string = resourceGroup().location

@description('Where Communication Services keeps data at rest, e.g. "United States", "Europe", "UK". Fixed once the resource exists.')
param acsDataLocation string = 'United States'

@description('Default SMS sender (E.164 number, short code or alphanumeric sender ID). Acquired outside Bicep; may stay empty until then.')
param smsFrom string = ''

@description('Queue drained by SendSmsFromQueue. Its poison queue is "<name>-poison".')
@minLength(3)
@maxLength(56)
param smsQueueName string = 'sms-outbox'

@description('Queue that records recipients whose send failed permanently.')
@minLength(3)
@maxLength(63)
param smsFailedQueueName string = 'sms-failed'

@description('Most segments one SMS may take.')
@minValue(1)
@maxValue(255)
param smsMaxSegments int = 10

@description('Log filter for the handler (RUST_LOG).')
param rustLog string = 'info'

@description('Most instances Flex Consumption may scale out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory per Flex Consumption instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Object id of a developer (or a CI principal) that gets the same data roles as the app, to run the handler against Azure from a workstation. Empty: none.')
param developerPrincipalId string = ''

@description('Kind of principal developerPrincipalId names.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param developerPrincipalType string = 'User'

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-${token}'
var deploymentContainerName = 'app-package-${functionAppName}'
var smsPoisonQueueName = '${smsQueueName}-poison'

// Built-in role definition ids; tests/infra pins each id to its role name.
// communicationServiceOwner is "Communication and Email Service Owner".
// Communication Services authorises Entra callers of its data plane (SMS,
// Identity) through its control-plane actions and does not honour custom
// roles, so this built-in role is the narrowest one that lets the app send
// SMS and issue identities and tokens. The broader Contributor role that
// older samples grant is not needed.
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  communicationServiceOwner: '09976791-48a7-449e-bb21-39d1a415f350'
}

// ---------------------------------------------------------------- monitoring

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${token}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    // Telemetry is accepted only with an Entra token (the app's identity).
    DisableLocalAuth: true
  }
}

// ------------------------------------------------------------------- storage

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'st${token}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// Flex Consumption pulls the deployed package from this container.
resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource smsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: smsQueueName
}

// The queue trigger moves a message here after maxDequeueCount failed tries.
// Created up front so the app never needs rights to create queues.
resource smsPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: smsPoisonQueueName
}

resource smsFailedQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: smsFailedQueueName
}

// ---------------------------------------------------- communication services

resource acs 'Microsoft.Communication/communicationServices@2023-04-01' = {
  name: 'acs-${token}'
  // The Communication Services control plane is global; data stays in dataLocation.
  location: 'global'
  tags: tags
  properties: {
    dataLocation: acsDataLocation
  }
}

// -------------------------------------------------------------- function app

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${token}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: functionAppName
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      // Flex reads the worker runtime here, not from FUNCTIONS_WORKER_RUNTIME.
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [
        {
          // Host storage through the system-assigned identity.
          name: 'AzureWebJobsStorage__accountName'
          value: storage.name
        }
        {
          // Identity-based connection "SmsQueue" used by the queue bindings.
          name: 'SmsQueue__queueServiceUri'
          value: storage.properties.primaryEndpoints.queue
        }
        {
          name: 'ACS_ENDPOINT'
          value: 'https://${acs.properties.hostName}'
        }
        {
          name: 'SMS_FROM'
          value: smsFrom
        }
        {
          name: 'SMS_QUEUE_NAME'
          value: smsQueueName
        }
        {
          name: 'SMS_FAILED_QUEUE_NAME'
          value: smsFailedQueueName
        }
        {
          name: 'SMS_MAX_SEGMENTS'
          value: string(smsMaxSegments)
        }
        {
          name: 'RUST_LOG'
          value: rustLog
        }
        {
          // Endpoint and component id only; DisableLocalAuth demands a token too.
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsights.properties.ConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'Authorization=AAD'
        }
      ]
    }
  }
}

// ---------------------------------------------------------- role assignments
// Names are deterministic (scope, principal resource, role) so that a
// redeployment finds the existing assignment instead of failing.

resource appBlobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource appQueueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, functionApp.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource appCommunicationOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(acs.id, functionApp.id, roles.communicationServiceOwner)
  scope: acs
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.communicationServiceOwner)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// The same data roles for a developer, only when developerPrincipalId is set.

resource devBlobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(developerPrincipalId)) {
  name: guid(storage.id, developerPrincipalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: developerPrincipalId
    principalType: developerPrincipalType
  }
}

resource devQueueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(developerPrincipalId)) {
  name: guid(storage.id, developerPrincipalId, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: developerPrincipalId
    principalType: developerPrincipalType
  }
}

resource devMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(developerPrincipalId)) {
  name: guid(appInsights.id, developerPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: developerPrincipalId
    principalType: developerPrincipalType
  }
}

resource devCommunicationOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(developerPrincipalId)) {
  name: guid(acs.id, developerPrincipalId, roles.communicationServiceOwner)
  scope: acs
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.communicationServiceOwner)
    principalId: developerPrincipalId
    principalType: developerPrincipalType
  }
}

// ------------------------------------------------------------------- outputs

output AZURE_FUNCTION_APP_NAME string = functionApp.name
output ACS_ENDPOINT string = 'https://${acs.properties.hostName}'
output AZURE_STORAGE_ACCOUNT_NAME string = storage.name
output AZURE_RESOURCE_GROUP string = resourceGroup().name
