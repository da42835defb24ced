"""Azure Service Bus source (an Event Flows subscription), on Kafka Connect only.

Rendered for Confluent's Azure Service Bus source connector (a commercial licence). No
Python implementation: there is no Service Bus emulator to test one against here, so
`algorail connect` says it needs Kafka Connect.
"""

from __future__ import annotations

from typing import Any

from .base import (
    REFERENCE_SCHEMA,
    FirstPartyConnector,
    PluginArtifact,
    config_schema,
    source_properties,
)

SERVICEBUS_PLUGIN = PluginArtifact(
    name="kafka-connect-azure-service-bus",
    artifacts=({"type": "zip", "url": (
        "https://api.hub.confluent.io/api/plugins/confluentinc/"
        "kafka-connect-azure-service-bus/versions/1.2.6/archive")},),
    license="Confluent commercial licence (30-day trial without a key)",
    docs="https://docs.confluent.io/kafka-connectors/azure-service-bus/current/",
)


class ServiceBusSource(FirstPartyConnector):
    name = "servicebus"
    description = "Subscribes to an Azure Service Bus queue or topic subscription (Kafka Connect)."
    kinds = ("source",)
    connector_class = "io.confluent.connect.azure.servicebus.ServiceBusSourceConnector"
    plugin = SERVICEBUS_PLUGIN
    secret_keys = ("sasKey",)
    event_flow_type = "AzureServiceBus"
    config_schema = config_schema(
        {
            "namespace": {"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9-]{4,48}[A-Za-z0-9]$"},
            "entity": {"type": "string", "minLength": 1, "description": "queue or topic name"},
            "subscription": {"type": "string", "description": "for a topic"},
            "sasKeyName": {"type": "string", "minLength": 1},
            "sasKey": REFERENCE_SCHEMA,
            "licenseBootstrapServers": {"type": "string"},
        },
        ["namespace", "entity", "sasKeyName", "sasKey"],
    )

    def event_flow_uri(self, config: dict[str, Any]) -> str:
        uri = f"sb://{config['namespace']}.servicebus.windows.net/{config['entity']}"
        if "subscription" in config:
            uri += f"/subscriptions/{config['subscription']}"
        return uri

    def properties(self, connector: Any) -> dict[str, Any]:
        config = connector.config
        return {
            **source_properties(connector),
            "kafka.topic": next(iter(connector.outputs.values())),
            "azure.servicebus.namespace": config["namespace"],
            "azure.servicebus.entity.name": config["entity"],
            "azure.servicebus.subscription": config.get("subscription"),
            "azure.servicebus.sas.keyname": config["sasKeyName"],
            "azure.servicebus.sas.key": config["sasKey"],
            "confluent.topic.bootstrap.servers": config.get(
                "licenseBootstrapServers", "${env:ALGORAIL_BOOTSTRAP_SERVERS}"),
        }
