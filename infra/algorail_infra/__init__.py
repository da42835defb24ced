"""algorail's Pulumi program as a package: one ComponentResource per service.

`stack.build(config.load_settings(...))` creates the whole stack; `__main__.py` only
reads the config, calls it and exports the outputs.
"""
