"""What a check returns: a status, a detail, a fix; and the doctor's exit codes."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


class Status(enum.Enum):
    """Outcome of one check. Only FAIL changes the exit code."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class CheckResult:
    """One line of the report, the notes below it, and a fix for WARN and FAIL."""

    check: str
    status: Status
    detail: str
    fix: str = ""
    notes: tuple[str, ...] = ()
    """Extra lines printed under the result (e.g. every configuration problem)."""

    def lines(self) -> list[str]:
        """The printed form: ``STATUS  check: detail``, notes, then ``fix: ...``."""
        out = [f"{self.status.value}  {self.check}: {self.detail}"]
        out += [f"      - {note}" for note in self.notes]
        if self.fix and self.status in (Status.WARN, Status.FAIL):
            out.append(f"      fix: {self.fix}")
        return out


def passed(check: str, detail: str, notes: Sequence[str] = ()) -> CheckResult:
    return CheckResult(check, Status.PASS, detail, notes=tuple(notes))


def warned(check: str, detail: str, fix: str, notes: Sequence[str] = ()) -> CheckResult:
    return CheckResult(check, Status.WARN, detail, fix, tuple(notes))


def failed(check: str, detail: str, fix: str, notes: Sequence[str] = ()) -> CheckResult:
    return CheckResult(check, Status.FAIL, detail, fix, tuple(notes))


def skipped(check: str, detail: str) -> CheckResult:
    return CheckResult(check, Status.SKIP, detail)
