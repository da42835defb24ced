"""First-party data connectors, registered like any other plugin."""
