"""algorail: pipelines of algorithms and models on Kafka and Kubernetes."""

__version__ = "0.1.0"
