"""The run's plan (amsr2flow.plan): the one place that says which years and days a configuration asks for, from
which sensor, which years are complete, sealed or keep their swaths, and where every output goes."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from amsr2flow import config as settings
from amsr2flow.plan import RunPlan, day_mission, missions, parse_period_tag, period_tag


def plan(tmp_path: Path, **cfg: object) -> RunPlan:
    return RunPlan.from_config(
        settings.validate({"output_dir": str(tmp_path / "results"), **cfg}, check_environment=False)
    )


def test_years_split_at_new_year_and_carry_their_periods(tmp_path: Path) -> None:
    run = plan(tmp_path, start="2023-12-30", end="2024-01-02")
    assert [(y.year, y.first_day.isoformat(), y.day_after_last.isoformat()) for y in run.years.values()] == [
        (2023, "2023-12-30", "2024-01-01"),
        (2024, "2024-01-01", "2024-01-03"),
    ]
    assert run[2023].period == "20231230-20240101" and run.run_tag == "20231230-20240103"
    assert [d.isoformat() for d in run.days] == ["2023-12-30", "2023-12-31", "2024-01-01", "2024-01-02"]
    assert parse_period_tag(run[2024].period) == (date(2024, 1, 1), date(2024, 1, 3))
    assert period_tag(*parse_period_tag("20160101-20170101")) == "20160101-20170101"


def test_one_record_across_sensors_takes_each_day_from_its_mission(tmp_path: Path) -> None:
    cfg = settings.validate(
        {"start": "2011-10-01", "end": "2012-07-05", "dataset": ["amsr2-l1b", "amsre-l1b"]}, check_environment=False
    )
    run = RunPlan.from_config(cfg)
    assert {y: (p.first_day.isoformat(), p.day_after_last.isoformat()) for y, p in run.years.items()} == {
        2011: ("2011-10-01", "2011-10-05"),  # AMSR-E's last day is 2011-10-04
        2012: ("2012-07-03", "2012-07-06"),  # AMSR2's first is 2012-07-03
    }
    assert [m.key for m in missions(cfg)] == ["amsre", "amsr2"]
    assert run[2011].mission.archive_prefix == "AMSRE" and run[2012].mission.archive_prefix == "AMSR2"
    assert len(run.days) == 4 + 3  # the gap between the missions is never asked for
    assert day_mission(cfg, date(2012, 1, 1)) is None
    assert run.archive_name(2011) == "AMSRE_temp_only_20111001_000000_to_20111005_000000"


def test_complete_sealed_and_temporary_years(tmp_path: Path) -> None:
    run = plan(tmp_path, start="2023-01-01", end="2024-01-02", geolocation=True)
    assert run[2023].complete and not run[2024].complete
    assert run.archive(2023) == tmp_path / "results" / "archives" / (
        "AMSR2_temp_with_coords_20230101_000000_to_20240101_000000.npz"
    )
    assert run.swaths_are_temporary(2023) and not run.swaths_are_temporary(2024)
    assert not run.is_sealed(2023)
    run.archive(2023).parent.mkdir(parents=True)
    run.archive(2023).write_bytes(b"")
    assert run.is_sealed(2023) and not run.is_sealed(2024)
    kept = plan(tmp_path, start="2023-01-01", end="2023-12-31", keep_swaths=True)
    assert not kept.swaths_are_temporary(2023)


def test_paths_and_the_rules_wildcard_patterns_are_one_definition(tmp_path: Path) -> None:
    layout = plan(tmp_path, start="2024-01-01", end="2024-01-02").layout
    root = tmp_path / "results"
    assert layout.day_record("2024-01-02") == root / "swaths" / "2024" / "2024-01-02.json"
    assert str(layout.day_record("{day}", "{year}")) == f"{root}/swaths/{{year}}/{{day}}.json"
    pattern = str(layout.year_report("{year}", "{period}", ".html"))
    assert pattern.format(year=2024, period="20240101-20240103") == str(
        layout.year_report(2024, "20240101-20240103", ".html")
    )
    assert layout.day_job_log(2024, "2024-01-02") == root / "logs" / "granules" / "2024" / "2024-01-02.log"
    assert layout.day_job_log("{year}", "{day}", downloads=True).parts[-3:] == ("downloads", "{year}", "{day}.log")
    assert layout.scratch == root / ".scratch"


def test_map_days_follow_report_map_days_within_each_year(tmp_path: Path) -> None:
    assert plan(tmp_path, start="2023-12-30", end="2024-01-02").map_days(2024) == ["2024-01-01"]
    listed = plan(tmp_path, start="2023-12-30", end="2024-01-05", report={"map_days": ["2024-01-03", "2023-12-31"]})
    assert listed.map_days(2024) == ["2024-01-03"] and listed.map_days(2023) == ["2023-12-31"]
    assert plan(tmp_path, start="2024-01-01", end="2024-01-02", report={"map_days": "none"}).map_days(2024) == []
    assert plan(tmp_path, start="2024-01-01", end="2024-01-02", report={"figures": False}).map_days(2024) == []


def test_pending_days_are_the_days_without_a_record_that_list_granules(tmp_path: Path) -> None:
    import pandas as pd

    from amsr2flow.gportal.catalogue import MANIFEST_COLUMNS, manifest_to_csv_bytes
    from amsr2flow.run.sessions import EMPTY_MANIFEST_BYTES as EMPTY

    def pending(run: RunPlan) -> list[str]:
        return [d.isoformat() for d in run.pending_days(empty_manifest_bytes=EMPTY)]

    assert len(manifest_to_csv_bytes(pd.DataFrame(columns=MANIFEST_COLUMNS))) == EMPTY  # a day of no granule
    run = plan(tmp_path, start="2023-12-30", end="2024-01-03")
    assert pending(run) == ["2023-12-30", "2023-12-31", "2024-01-01", "2024-01-02", "2024-01-03"]  # none listed yet
    layout = run.layout
    for day, size in ((date(2024, 1, 1), EMPTY), (date(2024, 1, 2), EMPTY + 80)):
        layout.day_manifest(day).parent.mkdir(parents=True, exist_ok=True)
        layout.day_manifest(day).write_bytes(b"x" * size)  # 01-01 lists no granule: it has no job
    layout.day_record("2024-01-03").parent.mkdir(parents=True)
    layout.day_record("2024-01-03").write_text("{}")  # done
    assert pending(run) == ["2023-12-30", "2023-12-31", "2024-01-02"]
    # a sealed year is not looked at
    sealed = plan(tmp_path, start="2023-01-01", end="2024-01-02")
    sealed.archive(2023).parent.mkdir(parents=True)
    sealed.archive(2023).write_bytes(b"")
    assert pending(sealed) == ["2024-01-02"]
