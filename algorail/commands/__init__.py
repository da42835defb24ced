"""CLI commands, one module per area; each imports heavy modules inside its commands."""
