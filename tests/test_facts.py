"""Facts a granule's sources share (formats.facts): each cross-check fails when its two sources disagree, and
the extraction keeps the orbit direction whatever else it extracts (the defect that lost it for every swath
extracted with `variables:` set)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import h5py
import numpy as np
import pytest

from amsr2flow.emulator import orbit, synth
from amsr2flow.formats import facts, variables
from amsr2flow.formats.swath import extract_granule, extract_swath

DAY = date(2024, 1, 1)


@pytest.fixture(scope="module")
def granules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An ascending and a descending synthetic granule (60 scans), by direction."""
    folder = tmp_path_factory.mktemp("granules")
    out = {}
    for spec in orbit.granules_beginning_on(DAY)[:2]:
        synth.write_granule(folder / spec.file_name, spec, n_scans=60)
        out[spec.orbit_direction] = folder / spec.file_name
    assert set(out) == {"A", "D"}
    return out


def _copy(path: Path, folder: Path) -> Path:
    target = folder / path.name
    target.write_bytes(path.read_bytes())
    return target


def _record(path: Path, **changes: object) -> facts.CatalogueRecord:
    """What the local G-Portal's catalogue says of a granule (its orbit model), with ``changes``."""
    spec = orbit.granule_by_id(path.name)
    assert spec is not None
    stamp = facts.CatalogueRecord(
        granule_id=spec.granule_id,
        orbit_direction=spec.orbit_direction,
        begin_utc=synth.format_utc_ms(spec.start_unix),
        end_utc=synth.format_utc_ms(spec.end_unix),
        size_bytes=path.stat().st_size,
    )
    return facts.CatalogueRecord(**{**stamp.__dict__, **changes})


def _check(path: Path, record: facts.CatalogueRecord, geolocation: bool = False, tolerance: float = 0.001):
    extraction = extract_granule(path, ("36.5H",), geolocation)
    return extraction.disagreements(record, f"/product/Standard/x/{path.name}", tolerance)


def _set_attribute(path: Path, name: str, value: str) -> None:
    with h5py.File(path, "r+") as h5:
        h5.attrs[name] = np.array([value.encode()], dtype=f"S{len(value)}")


# -- the defect: the orbit direction whatever else is extracted -------------------------------------------------
@pytest.mark.parametrize(
    "extra", [(), ("earth_incidence",), ("land_fraction", "earth_incidence"), tuple(variables.EXTRA_VARIABLES)]
)
@pytest.mark.parametrize("channels", [("36.5H",), ("18.7V", "89.0AH")])
@pytest.mark.parametrize("geolocation", [False, True])
def test_the_orbit_direction_survives_any_extraction(
    granules: dict[str, Path], extra: tuple[str, ...], channels: tuple[str, ...], geolocation: bool
) -> None:
    for direction, path in granules.items():
        swath = extract_swath(path, channels, geolocation, extra_variables=extra)
        assert swath.metadata.orbit_type == direction == path.name.split("_")[2][-1]
        assert swath.metadata.variables == tuple(v for v in variables.EXTRA_VARIABLES if v in extra)


# -- what each witness says -----------------------------------------------------------------------------------
def test_the_files_own_facts_agree_with_the_orbit_model(granules: dict[str, Path]) -> None:
    for direction, path in granules.items():
        for geolocation in (False, True):  # the latitudes are read either way
            found = extract_granule(path, ("36.5H",), geolocation).file_facts
            assert found.orbit_direction == found.latitude_direction == direction
            assert found.granule_id == path.stem
        assert _check(path, _record(path)) == []


def test_latitudes_tell_the_direction_independently() -> None:
    """Independent of the orbit model: the orbit's nadir latitude over a half orbit from the orbit's inclination
    (98.2 degrees: arcsin(sin i * sin u)) rises for u from -90 to 90 degrees and falls after."""
    u = np.radians(np.linspace(-90, 90, 200))
    rising = np.degrees(np.arcsin(np.sin(np.radians(98.2)) * np.sin(u)))
    latitude = np.tile(rising[:, None], (1, 243)).astype(np.float32)
    assert facts.direction_of_latitudes(latitude) == "A"
    assert facts.direction_of_latitudes(latitude[::-1]) == "D"
    flat = np.full((200, 243), 45.0, dtype=np.float32)
    assert facts.direction_of_latitudes(flat) is None  # no travel: cannot tell
    fills = np.full((200, 243), -9999.0, dtype=np.float32)
    assert facts.direction_of_latitudes(fills) is None
    with_gaps = latitude.copy()
    with_gaps[:20] = -9999.0  # fill scans at the start do not matter
    assert facts.direction_of_latitudes(with_gaps) == "A"


# -- each cross-check, with its two sources disagreeing --------------------------------------------------------
def test_catalogue_and_file_name_disagree_on_the_direction(granules: dict[str, Path]) -> None:
    path = granules["A"]
    (found,) = _check(path, _record(path, orbit_direction="D"))
    assert found.fact == facts.ORBIT_DIRECTION
    assert dict(found.values) == {
        "catalogue": "D",
        "file name": "A",
        "file attribute": "A",
        "latitudes": "A",
        "stored swath": "A",
    }
    assert "catalogue D" in found.message and "file name A" in found.message


def test_file_attribute_and_file_name_disagree_on_the_direction(granules: dict[str, Path], tmp_path: Path) -> None:
    path = _copy(granules["A"], tmp_path)
    _set_attribute(path, "OrbitDirection", "Descending")
    (found,) = _check(path, _record(path))
    assert found.fact == facts.ORBIT_DIRECTION and dict(found.values)["file attribute"] == "D"


def test_latitudes_and_file_name_disagree_on_the_direction(granules: dict[str, Path], tmp_path: Path) -> None:
    path = _copy(granules["D"], tmp_path)
    with h5py.File(path, "r+") as h5:  # the positions of a swath going north under a name that says south
        for name in ("Latitude of Observation Point for 89A", "Latitude of Observation Point for 89B"):
            h5[name][...] = h5[name][()][::-1]
    for geolocation in (False, True):
        (found,) = _check(path, _record(path), geolocation)
        assert found.fact == facts.ORBIT_DIRECTION
        assert dict(found.values)["latitudes"] == "A" and dict(found.values)["file name"] == "D"


def test_catalogue_and_scan_times_disagree_on_begin_and_end(granules: dict[str, Path]) -> None:
    path = granules["A"]
    record = _record(path)
    later = datetime.fromisoformat(record.begin_utc.replace("Z", "+00:00")).timestamp() + 2.0
    (found,) = _check(path, _record(path, begin_utc=synth.format_utc_ms(later)))
    assert found.fact == facts.BEGIN_TIME
    assert set(dict(found.values)) == {"catalogue", "file attribute", "scan times"}
    assert _check(path, _record(path, begin_utc=synth.format_utc_ms(later)), tolerance=2.5) == []
    end = datetime.fromisoformat(record.end_utc.replace("Z", "+00:00")).timestamp() - 0.5
    (found,) = _check(path, _record(path, end_utc=synth.format_utc_ms(end)))
    assert found.fact == facts.END_TIME and dict(found.values)["catalogue"] == synth.format_utc_ms(end)


def test_file_attribute_and_scan_times_disagree_on_the_begin(granules: dict[str, Path], tmp_path: Path) -> None:
    """The leap-second bug in the wild (37 s instead of 10): a file whose attribute is 27 s off its scan times."""
    path = _copy(granules["D"], tmp_path)
    begin = _record(path).begin_utc
    shifted = synth.format_utc_ms(datetime.fromisoformat(begin.replace("Z", "+00:00")).timestamp() - 27)
    _set_attribute(path, "ObservationStartDateTime", shifted)
    (found,) = _check(path, _record(path))
    assert found.fact == facts.BEGIN_TIME and dict(found.values) == {
        "catalogue": begin,
        "file attribute": shifted,
        "scan times": begin,
    }


def test_catalogue_file_name_and_file_attribute_disagree_on_the_id(granules: dict[str, Path], tmp_path: Path) -> None:
    path = _copy(granules["A"], tmp_path)
    _set_attribute(path, "GranuleID", "GW1AM2_202401010016_176A_L1SGBTBR_2210210")
    (found,) = _check(path, _record(path))
    assert found.fact == facts.GRANULE_ID and dict(found.values)["file attribute"].endswith("2210210")
    (found,) = _check(granules["A"], _record(granules["A"], granule_id="GW1AM2_202401010016_999A_L1SGBTBR_2220220"))
    assert found.fact == facts.GRANULE_ID and dict(found.values)["file name"] == granules["A"].stem


def test_a_granule_id_attribute_that_is_no_granule_name_is_not_a_witness(
    granules: dict[str, Path], tmp_path: Path
) -> None:
    """GranuleID is not confirmed against real files: another convention is left out, not a disagreement."""
    path = _copy(granules["A"], tmp_path)
    _set_attribute(path, "GranuleID", "L1SGBTBR-2024-000123")
    assert extract_granule(path).file_facts.granule_id == ""
    assert _check(path, _record(path)) == []


def test_catalogue_and_stored_size_disagree(granules: dict[str, Path]) -> None:
    path = granules["D"]
    (found,) = _check(path, _record(path, size_bytes=path.stat().st_size + 1))
    assert found.fact == facts.SIZE


def test_the_names_minute_and_the_stored_scan_start_disagree() -> None:
    gid = "GW1AM2_202401010016_176A_L1SGBTBR_2220220"
    assert facts.stored_disagreements(gid, orbit_type="A", scan_start_utc="2024-01-01T00:16:06.777Z") == []
    # the name may count the overlap scans (45 s earlier): a minute either way is accepted
    assert facts.stored_disagreements(gid, orbit_type="A", scan_start_utc="2024-01-01T00:17:01.000Z") == []
    (found,) = facts.stored_disagreements(gid, orbit_type="A", scan_start_utc="2024-01-01T00:21:06.777Z")
    assert found.fact == facts.START_MINUTE and dict(found.values)["file name"] == "2024-01-01T00:16"


def test_a_stored_orbit_type_the_granule_id_contradicts() -> None:
    gid = "GW1AM2_202401010105_192D_L1SGBTBR_2220220"
    (found,) = facts.stored_disagreements(gid, orbit_type="U", scan_start_utc="2024-01-01T01:05:33.301Z")
    assert dict(found.values) == {"file name": "D", "stored swath": "U"}
    assert facts.stored_disagreements(gid, orbit_type="D") == []
    # a name that does not say, and a stored U, are no disagreement: nobody knows more
    assert facts.stored_disagreements("legacy_part_2of5_00001", orbit_type="U") == []
    (found,) = facts.stored_disagreements("legacy_part_2of5_00001", orbit_type="U", latitude_direction="A")
    assert dict(found.values) == {"latitudes": "A", "stored swath": "U"}


def test_disagreements_merge_per_granule_and_fact_and_round_trip() -> None:
    one = facts.Disagreement("g", facts.ORBIT_DIRECTION, (("catalogue", "A"), ("stored swath", "U")))
    two = facts.Disagreement("g", facts.ORBIT_DIRECTION, (("latitudes", "A"), ("file name", "A")))
    (merged,) = facts.merge([one, two])
    assert [s for s, _ in merged.values] == ["catalogue", "file name", "latitudes", "stored swath"]
    assert facts.Disagreement.from_json(merged.to_json()) == merged


def test_times_that_are_not_times_disagree_with_times() -> None:
    found = facts.compare_times("g", facts.BEGIN_TIME, {"catalogue": "2024-01-01T00:00:00.000Z", "file attribute": "?"})
    assert found is not None and "file attribute ?" in found.message


def test_catalogue_records_are_read_from_day_manifests(tmp_path: Path) -> None:
    folder = tmp_path / "manifests" / "2024"
    folder.mkdir(parents=True)
    (folder / "2024-01-01.csv").write_text(
        "granule_id,begin_utc,end_utc,orbit_direction,path_number,remote_path,size_bytes\n"
        "GW1AM2_202401010016_176A_L1SGBTBR_2220220,2024-01-01T00:16:06.777Z,2024-01-01T01:05:31.981Z,A,176,/p/x.h5,99\n",
        encoding="utf-8",
    )
    paths = facts.manifest_paths(tmp_path / "manifests", ["GW1AM2_202401010016_176A_L1SGBTBR_2220220"])
    assert paths == [folder / "2024-01-01.csv"]
    (record,) = facts.read_catalogue_records(paths).values()
    assert (record.orbit_direction, record.size_bytes, record.begin_utc) == ("A", 99, "2024-01-01T00:16:06.777Z")
