"""First-party data connectors, registered like any other plugin.

Each module holds one family; `CONNECTORS` is the tuple this plugin registers.
"""

from __future__ import annotations

from algorail.hookspecs import hookimpl

from .http_sink import HttpSink
from .jdbc import DebeziumPostgresSource, JdbcSink, JdbcSource
from .kafka_bridge import KafkaBridge
from .redis_sink import RedisSink
from .s3 import S3Sink
from .servicebus import ServiceBusSource
from .sqs import SqsSource

CONNECTORS = (
    JdbcSink,  # PostgreSQL / MariaDB rows
    JdbcSource,  # polling a table by an incrementing id
    DebeziumPostgresSource,  # PostgreSQL change data capture (Kafka Connect only)
    S3Sink,  # JSON lines objects on S3 / MinIO
    RedisSink,  # streams, hashes, strings
    HttpSink,  # POST to a URL
    KafkaBridge,  # Event Flows: external Kafka topics
    SqsSource,  # Event Flows: Amazon SQS subscriptions
    ServiceBusSource,  # Event Flows: Azure Service Bus (Kafka Connect only)
)


@hookimpl
def register_connectors(register):
    for connector in CONNECTORS:
        register(connector())
