"""Errors a user can hit. The CLI prints them without a traceback and exits non-zero."""

from __future__ import annotations

from dataclasses import dataclass


class AlgorailError(Exception):
    """Base for every error that is the user's to fix; its message says how."""


@dataclass(frozen=True)
class Problem:
    """One broken rule in one place of a pipeline file."""

    rule: str
    message: str
    component: str | None = None
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.file or "<pipeline>"
        if self.line is not None:
            where += f":{self.line}"
        who = f" {self.component}:" if self.component else ""
        return f"{where}:{who} [{self.rule}] {self.message}"


class PipelineError(AlgorailError):
    """A pipeline file that cannot be loaded or breaks one or more rules."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def rules(self) -> set[str]:
        return {p.rule for p in self.problems}
