"""Cookiecutter templates behind `algorail new` (algo, connector, hook)."""
