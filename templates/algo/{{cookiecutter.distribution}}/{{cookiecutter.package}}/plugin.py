"""Registers the algo with algorail (entry point `algorail` in pyproject.toml)."""

from algorail.extensions import PackagedAlgo
from algorail.hookspecs import hookimpl

ENTRYPOINT = "{{ cookiecutter.package }}.algo:predict"


@hookimpl
def register_algos(register):
    register(PackagedAlgo(
        name="{{ cookiecutter.name }}",
        entrypoint=ENTRYPOINT,
        description="{{ cookiecutter.description }}",
    ))
