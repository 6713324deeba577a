"""The reports compare what two sources know: the catalogue's listing against the archive's index (orbit
direction, times, size; per day and direction archived + missing = catalogued), with what the day jobs found in
the files; any disagreement is listed with both values and makes the run exit 3. And nothing is shown as if it
were data when it is not: unknown directions are called so, empty panels say "no valid data"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from amsr2flow.formats import archive, facts
from amsr2flow.formats.swath import make_swath, write_swath
from amsr2flow.stages import figures, maps, report, report_pages

IDS = [
    "GW1AM2_202401010016_176A_L1SGBTBR_2220220",
    "GW1AM2_202401010105_192D_L1SGBTBR_2220220",
    "GW1AM2_202401010154_192A_L1SGBTBR_2220220",
    "GW1AM2_202401010244_208D_L1SGBTBR_2220220",
]
BEGINS = [
    "2024-01-01T00:16:06.777Z",
    "2024-01-01T01:05:33.301Z",
    "2024-01-01T01:54:59.824Z",
    "2024-01-01T02:44:26.348Z",
]
ENDS = ["2024-01-01T01:05:31.981Z", "2024-01-01T01:54:58.504Z", "2024-01-01T02:44:25.028Z", "2024-01-01T03:33:51.552Z"]


def listing() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "day": ["2024-01-01"] * 4,
            "granule_id": IDS,
            "begin_utc": BEGINS,
            "end_utc": ENDS,
            "orbit_direction": ["A", "D", "A", "D"],
            "size_bytes": ["1000"] * 4,
        }
    )


def index(orbit_types: list[str], begins: list[str] = BEGINS) -> pd.DataFrame:
    """An archive index as ``Archive.index`` gives it (times as UTC timestamps)."""
    return pd.DataFrame(
        {
            "granule_id": IDS,
            "orbit_type": orbit_types,
            "scan_start_utc": pd.to_datetime(begins, utc=True, format="ISO8601"),
            "scan_end_utc": pd.to_datetime(ENDS, utc=True, format="ISO8601"),
            "source_size": [1000] * 4,
            "source_sha256": ["ab" * 32] * 4,
        }
    )


def year(archive_index: pd.DataFrame, ledger: dict | None = None, **kwargs: object) -> dict:
    return report.year_report(
        year=2024,
        listing=listing(),
        archive_path=Path("AMSR2_temp_only_20240101_000000_to_20240102_000000.npz"),
        archive_index=archive_index,
        verification={"valid": 4, "damaged": 0, "ok": True, "problems": []},
        parts=[],
        ledger=ledger or {},
        **kwargs,
    )


def test_agreeing_sources_give_a_complete_run() -> None:
    good = year(index(["A", "D", "A", "D"]))
    assert good["disagreements"] == [] and good["count_problems"] == []
    assert good["days"][0]["ascending"] == {"expected": 2, "archived": 2, "missing": 0}
    run = report.run_report([good], start="2024-01-01", end="2024-01-01")
    assert run["status"] == "complete" and report.run_outcome(run, [], "r.html")[0] == 0
    assert "agree on every archived granule" in report.year_markdown(good)


def test_stored_orbit_types_are_counted_and_compared_against_the_catalogue() -> None:
    """The defect as the report must see it: every swath archived, every one stored as U."""
    bad = year(index(["U"] * 4))
    assert bad["archived_granules"] == 4  # archived, by id
    assert bad["days"][0]["ascending"] == {"expected": 2, "archived": 0, "missing": 0}  # but none *as* ascending
    assert bad["orbit_direction"]["D"]["archived"] == 0
    assert len(bad["count_problems"]) == 2 and "2 catalogued, but 0 archived as ascending" in bad["count_problems"][0]
    assert [d["granule_id"] for d in bad["disagreements"]] == IDS
    assert bad["disagreements"][0]["values"] == {"catalogue": "A", "file name": "A", "stored swath": "U"}
    run = report.run_report([bad], start="2024-01-01", end="2024-01-01")
    code, lines = report.run_outcome(run, ["absent", "invalid"], "r.html")
    assert code == report.EXIT_INCOMPLETE and run["status"] == "incomplete"
    assert any("4 fact(s) of archived granules disagree" in line and IDS[0] in line for line in lines)
    page = report_pages.year_page(bad, first=pd.Timestamp("2024-01-01").date(), last=pd.Timestamp("2024-01-01").date(),
                                  csv_name="g.csv")  # fmt: skip
    assert "Cross-checks" in page and "stored swath: <strong>U</strong>" in page
    assert "| `GW1AM2_202401010016_176A_L1SGBTBR_2220220` | 2024-01-01 | orbit direction |" in report.year_markdown(bad)


def test_catalogue_and_archive_disagree_on_a_begin_time_and_the_tolerance_decides() -> None:
    late = [*BEGINS[:3], "2024-01-01T02:44:28.348Z"]  # two seconds after the catalogue's begin
    found = year(index(["A", "D", "A", "D"], late))["disagreements"]
    assert [(d["granule_id"], d["fact"]) for d in found] == [(IDS[3], facts.BEGIN_TIME)]
    assert found[0]["values"] == {"catalogue": BEGINS[3], "stored swath": late[3]}
    assert year(index(["A", "D", "A", "D"], late), time_tolerance_s=2.5)["disagreements"] == []


def test_what_the_day_job_found_in_the_file_is_listed_and_marks_the_granule() -> None:
    found = facts.Disagreement(IDS[1], facts.ORBIT_DIRECTION, (("file attribute", "A"), ("file name", "D")))
    ledger = {IDS[1]: {"status": "disagrees", "reason_class": "disagreement", "disagreements": [found.to_json()]}}
    checked = year(index(["A", "D", "A", "D"]), ledger)
    assert [d["values"] for d in checked["disagreements"]] == [{"file name": "D", "file attribute": "A"}]
    table = report.granule_table(
        listing=listing(),
        archive_name="a.npz",
        archive_index=index(["A", "D", "A", "D"]),
        part_of={},
        ledger=ledger,
        disagreements=checked["disagreements"],
    ).set_index("granule_id")
    assert table.loc[IDS[1], "status"] == "archived" and table.loc[IDS[1], "reason_class"] == "disagreement"
    assert "file attribute A" in table.loc[IDS[1], "last_error"] and table.loc[IDS[0], "last_error"] == ""


def test_a_direction_catalogued_and_never_archived_is_said() -> None:
    only_ascending = index(["A", "D", "A", "D"]).iloc[[0, 2]]
    ledger = {g: {"status": "absent", "reason_class": "absent"} for g in (IDS[1], IDS[3])}
    checked = year(only_ascending, ledger)
    assert checked["count_problems"] == ["2024-01-01 descending: 2 catalogued, none archived"]
    assert checked["days"][0]["descending"] == {"expected": 2, "archived": 0, "missing": 2}


# -- figures, maps and pages say what they show ---------------------------------------------------------------
def _archive(tmp_path: Path, orbit_type: str, raw_value: int) -> Path:
    rng = np.random.default_rng(0)
    latitude = np.sort(rng.uniform(-70, 70, (30, 243)), axis=0).astype(np.float32)
    swath = make_swath(
        IDS[0],
        orbit_type,
        {"36.5H": np.full((30, 243), raw_value, np.uint16)},
        [0.01],
        latitude=latitude,
        longitude=rng.uniform(-170, 170, (30, 243)).astype(np.float32),
        scan_start_utc=BEGINS[0],
        scan_end_utc=ENDS[0],
    )
    path = write_swath(swath, tmp_path / "swaths" / f"{IDS[0]}.npy")
    return archive.write_archive(tmp_path / "a.npz", [path])


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list:
    """The figures drawn (as matplotlib figures, to read their texts), saved as usual."""
    figures_drawn: list = []
    save = figures.save_png

    def keep(fig, path: Path) -> None:
        figures_drawn.append(fig)
        save(fig, path)

    monkeypatch.setattr(figures, "save_png", keep)
    return figures_drawn


def _texts(fig) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in [*ax.texts, ax.title, *(ax.get_legend() or ax).texts])


def test_unknown_directions_are_shown_as_unknown_never_as_descending(tmp_path: Path, drawn: list) -> None:
    with archive.Archive(_archive(tmp_path, "U", 25000)) as arch:
        figures.draw_histograms(figures.channel_histograms(arch, [0]), 1, tmp_path / "h.png")
        figures.draw_sample_quicklooks(arch, [0], tmp_path / "out", tmp_path / "cache")
        page = maps.day_map_html(arch, "2024-01-01", "t")
    histogram, quicklook = drawn
    assert "unknown direction (7,290 px)" in _texts(histogram) and "no valid data" not in _texts(histogram)
    assert "36.5H GHz, unknown direction" in _texts(quicklook) and "descending" not in _texts(quicklook)
    assert "unknown direction GW1AM2_202401010016_176A_L1SGBTBR_2220220" in page
    quicklook_caption = report_pages.year_page(
        year(index(["A", "D", "A", "D"])),
        first=pd.Timestamp("2024-01-01").date(),
        last=pd.Timestamp("2024-01-01").date(),
        csv_name="g.csv",
        figures_dir="f",
        figures={"quicklooks": [{"file_name": "q.png", "granule_id": IDS[0], "orbit_direction": "U",
                                 "scan_start_utc": BEGINS[0]}], "geolocation": True},
    )  # fmt: skip
    assert "2024-01-01T00:16 unknown direction" in quicklook_caption


def test_empty_panels_say_no_valid_data(tmp_path: Path, drawn: list) -> None:
    with archive.Archive(_archive(tmp_path, "A", 0)) as arch:  # 0: every pixel invalid
        figures.draw_histograms(figures.channel_histograms(arch, [0]), 1, tmp_path / "h.png")
        figures.draw_sample_quicklooks(arch, [0], tmp_path / "out", tmp_path / "cache")
        page = maps.day_map_html(arch, "2024-01-01", "t")
    histogram, quicklook = drawn
    assert "no valid data\nin the 1 sample swath(s)" in _texts(histogram)
    assert "no valid data" in _texts(quicklook)
    assert "ascending GW1AM2_202401010016_176A_L1SGBTBR_2220220 (no valid data)" in page


def test_a_repaired_orbit_type_draws_the_quicklook_again(tmp_path: Path) -> None:
    with archive.Archive(_archive(tmp_path / "u", "U", 25000)) as before:
        old = figures.quicklook_key(before, 0)
    with archive.Archive(_archive(tmp_path / "a", "A", 25000)) as after:
        assert figures.quicklook_key(after, 0) != old


def test_a_catalogue_without_the_direction_is_no_count_problem() -> None:
    """A catalogue record that gives no direction (the real service may leave it out) knows nothing to compare."""
    table = listing()
    table.loc[0, "orbit_direction"] = "U"
    checked = report.year_report(
        year=2024,
        listing=table,
        archive_path=Path("a.npz"),
        archive_index=index(["A", "D", "A", "D"]),
        verification={"valid": 4, "damaged": 0, "ok": True, "problems": []},
        parts=[],
        ledger={},
    )
    assert checked["count_problems"] == [] and checked["disagreements"] == []
    assert checked["days"][0]["ascending"] == {"expected": 1, "archived": 1, "missing": 0}
