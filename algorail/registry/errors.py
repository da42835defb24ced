"""The registry's refusals, each with the HTTP status the API answers it with."""

from __future__ import annotations

from algorail.errors import AlgorailError


class RegistryError(AlgorailError):
    status = 400

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or []


class NotFound(RegistryError):
    status = 404


class Conflict(RegistryError):
    status = 409


class Invalid(RegistryError):
    status = 422


class Forbidden(RegistryError):
    status = 403
