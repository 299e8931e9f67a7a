"""One check's outcome: ``ok``, ``warn`` or ``fail`` with a one-line hint saying what to do.

The same list reads well in a terminal (:meth:`CheckResult.line`), as JSON (:meth:`CheckResult.as_dict`)
and in the journal when start-up refuses to go on. Every other module of this package builds these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    message: str
    hint: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def line(self) -> str:
        text = f"{self.status:<4} {self.name}: {self.message}"
        return f"{text}\n     hint: {self.hint}" if self.hint else text


def ok(name: str, message: str) -> CheckResult:
    return CheckResult(name, "ok", message)


def warn(name: str, message: str, hint: str) -> CheckResult:
    return CheckResult(name, "warn", message, hint)


def fail(name: str, message: str, hint: str) -> CheckResult:
    return CheckResult(name, "fail", message, hint)


def worst(results: list[CheckResult]) -> Status:
    statuses = {r.status for r in results}
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "ok"
