"""The partnership's targets (``[report.targets]`` in evalbot.toml) beside the actual figures.

Each target names one headline figure of a period (``PeriodSummary``) and the level the
partnership aims for: at least that much (a share of places, a response rate, a change), or,
for the no-show rate, at most. A target whose figure is missing (no surveys yet, or left out
of the anonymous edition) is neither met nor missed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from surveys.models import BOOKING_STAGES, Sector, Stage
from surveys.report.rows import Measured, PeriodSummary

TargetKind = Literal["pct", "mean", "change"]


@dataclass(frozen=True)
class Target:
    label: str
    kind: TargetKind
    figure: Callable[[PeriodSummary], float | None]
    at_most: bool = False


def _sector_share(sector: Sector) -> Callable[[PeriodSummary], float | None]:
    def share(summary: PeriodSummary) -> float | None:
        held = sum(summary.held_by_sector.values())
        return summary.held_by_sector.get(sector.value, 0) / held if held else None

    return share


def _response(stage: Stage) -> Callable[[PeriodSummary], float | None]:
    return lambda summary: summary.responses.get(stage.value, Measured(None, 0)).value


def _change(transition: str, measure: str) -> Callable[[PeriodSummary], float | None]:
    return lambda summary: summary.change[(transition, measure)].value


TARGETS: dict[str, Target] = {
    **{
        f"{sector.name.lower()}_sector_share": Target(
            f"Share of places taken by the {sector.value} sector", "pct", _sector_share(sector)
        )
        for sector in Sector
    },
    "fill_rate": Target("Fill rate (places taken / offered)", "pct", lambda s: s.fill_rate),
    "attendance_rate": Target("Attended, of those expected", "pct", lambda s: s.attendance_rate),
    "no_show_rate": Target("No-show rate", "pct", lambda s: s.no_show_rate, at_most=True),
    **{
        f"{stage.value}_response_rate": Target(
            f"{stage.value.capitalize()} surveys finished, of those sent", "pct", _response(stage)
        )
        for stage in BOOKING_STAGES
    },
    "satisfaction_mean": Target("Mean satisfaction (1-5)", "mean", lambda s: s.satisfaction.value),
    "satisfied_share": Target("Rated 4 or 5", "pct", lambda s: s.satisfied.value),
    **{
        f"{measure}_change_{transition.replace(' ', '_')}": Target(
            f"Mean change in {measure}, {transition}", "change", _change(transition, measure)
        )
        for transition in ("pre to end", "end to impact")
        for measure in ("knowledge", "confidence")
    },
    "applied_share": Target("Applied their learning", "pct", lambda s: s.applied.value),
}


@dataclass(frozen=True)
class TargetResult:
    key: str
    label: str
    kind: TargetKind
    at_most: bool
    aim: float
    actual: float | None

    @property
    def met(self) -> bool | None:
        if self.actual is None:
            return None
        return self.actual <= self.aim if self.at_most else self.actual >= self.aim

    @property
    def verdict(self) -> str:
        return {True: "Met", False: "Not met", None: "No figure yet"}[self.met]


def check_targets(summary: PeriodSummary, targets: dict[str, float]) -> list[TargetResult]:
    """Each target of ``targets`` (key: aim) against the summary's figure, in the file's order."""
    results = []
    for key, aim in targets.items():
        target = TARGETS[key]
        results.append(
            TargetResult(
                key, target.label, target.kind, target.at_most, aim, target.figure(summary)
            )
        )
    return results


def unknown_targets(keys: list[str]) -> list[str]:
    return [key for key in keys if key not in TARGETS]
