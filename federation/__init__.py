"""Federation transports, looked up by name (``federation_engine`` in the conf)."""

from flow.core.registry import Registry

from .api import Federation, Party

ENGINES: Registry = Registry(
    "federation",
    {
        "standalone": "federation.standalone:StandaloneFederation",
        "rabbitmq": "federation.rabbitmq:RabbitMQFederation",
        "pulsar": "federation.pulsar:PulsarFederation",
    },
    case_insensitive=True,
)

__all__ = ["ENGINES", "Federation", "Party"]
