"""The data plane: broker, Kafka I/O, runners, gateway, hooks, results and object stores."""
