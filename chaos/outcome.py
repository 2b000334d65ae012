"""What a scenario reports: what it injected, what it measured, and its checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: Mismatches kept per check in the summary (the count says how many there were).
MAX_MISMATCHES = 200


@dataclass
class Check:
    """One comparison: ``ok`` when ``actual`` is what was expected."""

    name: str
    ok: bool
    expected: Any = None
    actual: Any = None
    mismatches: list[Any] = field(default_factory=list)
    mismatch_count: int = 0
    note: str = ""

    @classmethod
    def equal(cls, name: str, expected: Any, actual: Any, note: str = "") -> Check:
        return cls(name, expected == actual, expected, actual, note=note)

    @classmethod
    def none_of(cls, name: str, mismatches: list[Any], note: str = "", **extra: Any) -> Check:
        """Passes when there is no mismatch; keeps the first ``MAX_MISMATCHES``."""
        return cls(
            name,
            not mismatches,
            expected=extra.get("expected", 0),
            actual=extra.get("actual", len(mismatches)),
            mismatches=mismatches[:MAX_MISMATCHES],
            mismatch_count=len(mismatches),
            note=note,
        )

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.mismatches:
            del out["mismatches"], out["mismatch_count"]
        if not self.note:
            del out["note"]
        return out


@dataclass
class ScenarioResult:
    name: str
    injected: dict[str, Any] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(check.ok for check in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "injected": self.injected,
            "measured": self.measured,
            "checks": [check.to_json() for check in self.checks],
            **({"error": self.error} if self.error else {}),
        }

    def failed_checks(self) -> list[str]:
        return [check.name for check in self.checks if not check.ok]
