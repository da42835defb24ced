"""First-party plugins: algo runtimes and hook types, registered like any other plugin."""
