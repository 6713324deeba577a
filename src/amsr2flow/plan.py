"""The run's plan, in one place: what a configuration asks for and where everything goes.

``RunPlan.from_config(cfg)`` (a validated configuration) gives the run's years, each with its requested
period (first day, day after the last), its sensor and whether it is a complete calendar year; which years
are sealed (complete, their archive present) and which keep their swaths; and, through ``layout``, every
path of the results tree. The workflow's rules take their outputs from it (as wildcard patterns: pass
``"{year}"`` where a path wants a year), as do the scripts, ``amsr2flow status`` and the reports; the README
documents the same tree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from .formats.archive import archive_name
from .mission import DATASETS, Mission


class PlanError(ValueError):
    """A configuration whose days cannot be planned (the message says why)."""


# -- periods ----------------------------------------------------------------------------------------------
def period_tag(first_day: date, day_after_last: date) -> str:
    """``YYYYMMDD-YYYYMMDD``: first day and the day after the last (the legacy periods end at midnight)."""
    return f"{first_day:%Y%m%d}-{day_after_last:%Y%m%d}"


def parse_period_tag(tag: str) -> tuple[date, date]:
    """Inverse of :func:`period_tag`."""
    first, after = tag.split("-")
    return tuple(date(int(t[:4]), int(t[4:6]), int(t[6:])) for t in (first, after))  # type: ignore[return-value]


def days_between(first: date, after: date) -> list[date]:
    """The days from ``first`` to the day before ``after``."""
    return [first + timedelta(days=i) for i in range((after - first).days)]


# -- which sensor covers which days -----------------------------------------------------------------------
def dataset_keys(cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """The configured dataset(s): ``dataset`` is one name or a list of them."""
    value = cfg["dataset"]
    return (value,) if isinstance(value, str) else tuple(value)


def missions(cfg: Mapping[str, Any]) -> tuple[Mission, ...]:
    """The configured missions in time order (their periods do not overlap: AMSR-E ends 2011, AMSR2 begins
    2012)."""
    return tuple(sorted((DATASETS[k] for k in dataset_keys(cfg)), key=lambda m: m.first_day))


def mission_span(mission: Mission, first: date, last: date) -> tuple[date, date] | None:
    """The days of ``first..last`` (inclusive) inside the mission, as (first, last), or None."""
    low = max(first, mission.first_day)
    high = min(last, mission.last_day) if mission.last_day else last
    return (low, high) if low <= high else None


def day_mission(cfg: Mapping[str, Any], day: date) -> Mission | None:
    """The configured mission that observed ``day`` (None in the gap between missions)."""
    return next((m for m in missions(cfg) if mission_span(m, day, day)), None)


# -- the plan ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class YearPlan:
    """One year of the run: its requested period within its sensor's mission."""

    year: int
    first_day: date
    day_after_last: date
    mission: Mission

    @property
    def period(self) -> str:
        """``YYYYMMDD-YYYYMMDD``, as the year's listing, reports and grid record are named."""
        return period_tag(self.first_day, self.day_after_last)

    @property
    def complete(self) -> bool:
        """The whole calendar year: archived for good once its archive exists."""
        return self.first_day == date(self.year, 1, 1) and self.day_after_last == date(self.year + 1, 1, 1)

    @property
    def days(self) -> list[date]:
        return days_between(self.first_day, self.day_after_last)


def plan_years(cfg: Mapping[str, Any]) -> dict[int, YearPlan]:
    """For each year touched, the requested period within the configured missions' dates; one year, one mission."""
    start, end = date.fromisoformat(cfg["start"]), date.fromisoformat(cfg["end"])
    years = {}
    for year in range(start.year, end.year + 1):
        first, last = max(start, date(year, 1, 1)), min(end, date(year, 12, 31))
        spans = [(m, s) for m in missions(cfg) if (s := mission_span(m, first, last))]
        if len(spans) > 1:
            raise PlanError(f"dataset: {year} holds days of two missions; one year is archived from one sensor")
        if spans:
            mission, (low, high) = spans[0]
            years[year] = YearPlan(year, low, high + timedelta(days=1), mission)
    return years


@dataclass(frozen=True)
class RunPlan:
    """The run a configuration describes: its years and where everything goes."""

    layout: Layout
    years: dict[int, YearPlan] = field(repr=False)
    geolocation: bool = False
    keep_swaths: bool = False
    map_days_choice: str | tuple[str, ...] = "none"  # report.map_days, "none" without figures

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> RunPlan:
        return cls(
            layout=Layout.from_config(cfg),
            years=plan_years(cfg),
            geolocation=bool(cfg.get("geolocation", False)),
            keep_swaths=bool(cfg.get("keep_swaths", False)),
            map_days_choice=_map_days_choice(cfg.get("report", {})),
        )

    def __getitem__(self, year: int) -> YearPlan:
        return self.years[year]

    @property
    def days(self) -> list[date]:
        """Every requested day a configured mission covers (the gap between missions is never asked for)."""
        return [day for year in self.years.values() for day in year.days]

    @property
    def run_tag(self) -> str:
        """The run's period, as its report and granule table are named."""
        return period_tag(self.days[0], self.years[max(self.years)].day_after_last)

    def archive_name(self, year: int) -> str:
        """``AMSR2_temp_only_<start>_to_<end>`` (no suffix): the legacy name carries the period."""
        plan = self.years[year]
        start, end = (datetime(d.year, d.month, d.day) for d in (plan.first_day, plan.day_after_last))
        return archive_name(start, end, self.geolocation, plan.mission.archive_prefix)[: -len(".npz")]

    def archive(self, year: int) -> Path:
        return self.layout.archive(self.archive_name(year))

    def is_sealed(self, year: int) -> bool:
        """A complete year whose archive exists: archived for good (no rule remakes it)."""
        return self.years[year].complete and self.archive(year).is_file()

    def map_days(self, year: int) -> list[str]:
        """The days of ``year`` drawn as map pages (``report.map_days``: its first day, none, or those listed)."""
        first, after = self.years[year].first_day.isoformat(), self.years[year].day_after_last.isoformat()
        if self.map_days_choice == "none":
            return []
        if self.map_days_choice == "first":
            return [first]
        return sorted(d for d in self.map_days_choice if first <= d < after)

    def pending_days(self, *, empty_manifest_bytes: int = 0) -> list[date]:
        """The days whose day job this run will run, as far as files tell before any job: the days of the years
        not sealed that have no day record yet, less those whose manifest lists no granule (a day without
        granules has no job: its manifest is the header alone, ``empty_manifest_bytes`` long).

        Cheap enough for every parse of the Snakefile: one folder listing per year not sealed, one ``stat`` per
        day without a record; nothing for sealed years. Jobs a changed manifest or a recheck brings back are
        not foreseen (they run all the same; the count only shares the session cap, see ``run.sessions``).
        """
        pending = []
        for year, plan in self.years.items():
            if self.is_sealed(year):
                continue
            folder = self.layout.day_record(plan.first_day.isoformat()).parent
            try:
                recorded = set(os.listdir(folder))
            except OSError:
                recorded = set()
            for day in plan.days:
                if self.layout.day_record(day.isoformat()).name in recorded:
                    continue
                try:
                    size = self.layout.day_manifest(day).stat().st_size
                except OSError:
                    size = None  # not listed yet: its job runs once the catalogue has
                if size is None or size > empty_manifest_bytes:
                    pending.append(day)
        return pending

    def swaths_are_temporary(self, year: int) -> bool:
        """A complete year keeps no swaths once archived, unless ``keep_swaths``."""
        return self.years[year].complete and not self.keep_swaths


def _map_days_choice(report: Mapping[str, Any]) -> str | tuple[str, ...]:
    choice = report.get("map_days", "first")
    if not report.get("figures", True):
        return "none"
    return choice if isinstance(choice, str) else tuple(choice)


# -- the results tree -------------------------------------------------------------------------------------
Part = str | int  # a path part: a value, or a "{wildcard}" for the rules' patterns


@dataclass(frozen=True)
class Layout:
    """Every path of a run's results tree. Parts may be values or ``"{wildcards}"`` (the rules' patterns)."""

    root: Path
    scratch: Path

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Layout:
        root = Path(cfg["output_dir"]).expanduser()
        scratch = Path(cfg["scratch_dir"]).expanduser() if cfg.get("scratch_dir") else root / ".scratch"
        return cls(root=root, scratch=scratch)

    def log(self, stage: str, name: str) -> Path:
        """One job's log: ``logs/<stage>/<name>`` (e.g. ``log("archives", "{name}.log")``)."""
        return self.root / "logs" / stage / name

    def day_job_log(self, year: Part, day: str, *, downloads: bool = False) -> Path:
        """A day job's log (the interim report reads it), or its split transfers' download job's."""
        return self.log("downloads" if downloads else "granules", f"{year}/{day}.log")

    # manifests
    def day_manifest(self, day: date) -> Path:
        return self.root / "manifests" / f"{day:%Y}" / f"{day:%Y-%m-%d}.csv"

    def day_manifest_info(self, day: date) -> Path:
        return self.day_manifest(day).with_suffix(".json")

    def manifests_dir(self) -> Path:
        return self.root / "manifests"

    def year_listing(self, year: Part, period: str) -> Path:
        return self.manifests_dir() / str(year) / f"granules_{period}.csv"

    # swaths
    def swath(self, day: date | str, granule_id: str) -> Path:
        day_s = day if isinstance(day, str) else day.isoformat()
        return self.root / "swaths" / day_s[:4] / day_s / f"{granule_id}.npy"

    def day_record(self, day: str, year: Part | None = None) -> Path:
        """The day job's output: each of the day's granules with its outcome (beside the day's swath folder)."""
        return self.root / "swaths" / str(year or day[:4]) / f"{day}.json"

    def day_downloads(self, year: Part, day: str) -> Path:
        """Split transfers: the download job's record of a day, beside the day's checked downloads."""
        return self.scratch / str(year) / f"{day}.json"

    def checked_download(self, year: Part, day: str, granule_id: str) -> Path:
        """A checked download waiting for its extraction job (split transfers only)."""
        return self.scratch / str(year) / day / f"{granule_id}.h5"

    # archives, parts
    def archives_dir(self) -> Path:
        return self.root / "archives"

    def archive(self, name: str) -> Path:
        return self.archives_dir() / f"{name}.npz"

    def parts_dir(self, year: Part) -> Path:
        return self.root / "parts" / str(year)

    # reports
    def reports_dir(self) -> Path:
        return self.root / "reports"

    def year_report(self, year: Part, period: str, suffix: str = ".json") -> Path:
        return self.reports_dir() / str(year) / f"report_{period}{suffix}"

    def year_granules(self, year: Part, period: str) -> Path:
        return self.reports_dir() / str(year) / f"granules_{period}.csv"

    def figures_dir(self, year: Part, period: str) -> Path:
        return self.reports_dir() / str(year) / f"figures_{period}"

    def quicklook_cache(self, year: Part) -> Path:
        """Outside the figures folder (Snakemake empties that before its job): quick-looks already drawn."""
        return self.reports_dir() / str(year) / ".quicklook_cache"

    def map_page(self, year: Part, day: str) -> Path:
        return self.reports_dir() / str(year) / "maps" / f"{day}.html"

    def run_report(self, run_tag: str, suffix: str = ".json") -> Path:
        return self.reports_dir() / f"run_{run_tag}{suffix}"

    def run_granules(self, run_tag: str) -> Path:
        return self.reports_dir() / f"granules_{run_tag}.csv"

    def interim_report(self, run_tag: str, suffix: str = ".json") -> Path:
        return self.reports_dir() / f"interim_{run_tag}{suffix}"

    # grids
    def grids_dir(self, year: Part) -> Path:
        return self.root / "grids" / str(year)

    def grids_record(self, year: Part, period: str) -> Path:
        return self.grids_dir(year) / f"grids_{period}.json"

    # the record (record.enabled)
    def record_dir(self) -> Path:
        return self.root / "record"

    def record_store(self) -> Path:
        """The Icechunk repository of every archived swath (formats.record)."""
        return self.record_dir() / "swaths.icechunk"

    def record_receipt(self) -> Path:
        """The record job's output: the commit it left and what each archive added (the store itself is
        appended in place, so it is no Snakemake output: those are deleted before their job runs)."""
        return self.record_dir() / "record.json"

    def record_statistics(self) -> Path:
        """Per-channel normalisation statistics of the training split (amsr2flow.training)."""
        return self.record_dir() / "normalisation.json"

    # ledger
    def ledger_dir(self, year: Part) -> Path:
        return self.root / "ledger" / str(year)

    def ledger_entry(self, day: str, granule_id: str) -> Path:
        return self.ledger_dir(day[:4]) / f"{granule_id}.json"

    def recheck_record(self, year: Part, stamp: str) -> Path:
        return self.ledger_dir(year) / "rechecks" / f"recheck_{stamp}.json"

    # the run's coordination files (not results)
    def state_dir(self) -> Path:
        """Run-wide coordination files (stop flag, circuit breaker, run lock); not results."""
        return self.root / ".state"

    def stop_flag(self) -> Path:
        return self.state_dir() / "STOP"

    def breaker_state(self) -> Path:
        return self.state_dir() / "breaker.json"

    def template_choice_file(self) -> Path:
        """Where granules are on SFTP for this run: the path template the preflight chose (run.preflight)."""
        return self.state_dir() / "remote_layout.json"

    def run_status(self, run_tag: str) -> Path:
        """The always-stale target that brings an unchanged rerun to its end-of-run handler."""
        return self.state_dir() / f"run_status_{run_tag}.txt"

    def metadata_checked(self) -> Path:
        """The archive versions found right by the start-of-run check (formats.repair)."""
        return self.state_dir() / "metadata_checked.json"
