"""CLI commands, one module per area; each imports heavy modules inside its commands."""

import logging


def service_logging(fmt: str = "%(message)s") -> None:
    """Services log one line per state change: ours at INFO, the Kafka client's errors only."""
    logging.basicConfig(level=logging.INFO, format=fmt)
    logging.getLogger("kafka").setLevel(logging.ERROR)
