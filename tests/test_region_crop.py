"""Swaths cropped to a region: the kept rows are the whole granule's rows, bit for bit, with the index of the
first one; a granule none of whose scans touch the region is an outcome of its own."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from amsr2flow.emulator import orbit, synth
from amsr2flow.formats import archive
from amsr2flow.formats.swath import OutsideRegion, extract_granule, read_swath, write_swath
from amsr2flow.region import region_from_setting

JAPAN = [128.0, 30.0, 146.0, 46.0]
CHANNELS = ("36.5H", "89.0AV", "18.7V")
VARIABLES = ("earth_incidence", "land_fraction", "scan_quality")


@pytest.fixture(scope="module")
def japan_granule(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first granule of 2024-01-01 that passes over Japan, at 400 scans."""
    japan = region_from_setting(JAPAN)
    folder = tmp_path_factory.mktemp("granules")
    for spec in orbit.granules_beginning_on(date(2024, 1, 1)):
        times = synth.scan_times_unix(spec, n_scans=400)
        lat, lon = orbit.footprints(times, 243, spec.flavour)
        if japan.contains(lon, lat).any():
            path = folder / spec.file_name
            synth.write_granule(path, spec, n_scans=400)
            return path
    raise AssertionError("no granule over Japan on 2024-01-01")


@pytest.mark.parametrize("geolocation", [True, False])
def test_a_cropped_swath_is_the_whole_swaths_rows_from_its_first_scan(japan_granule: Path, geolocation) -> None:
    japan = region_from_setting(JAPAN)
    whole = extract_granule(japan_granule, CHANNELS, True, extra_variables=VARIABLES).swath
    cropped = extract_granule(
        japan_granule, CHANNELS, geolocation, extra_variables=VARIABLES, region=japan, margin_scans=2
    ).swath
    meta, overlap = cropped.metadata, whole.metadata.overlap_scans
    rows = slice(meta.first_scan, meta.first_scan + meta.shape[0])
    assert overlap > 0 and meta.overlap_scans == 0 and meta.region == japan.description
    # the rows touching the region (from the whole swath's own positions), two more on each side
    touching = np.flatnonzero(japan.contains(whole["longitude"], whole["latitude"]).any(axis=1))
    assert rows.start == touching[0] - 2 and rows.stop == touching[-1] + 3
    assert 0 < meta.shape[0] < whole.metadata.shape[0] // 2
    assert set(cropped.arrays) == set(whole.arrays) - (set() if geolocation else {"latitude", "longitude"})
    for name, values in cropped.arrays.items():
        assert np.array_equal(values, whole.arrays[name][rows]), name  # bit for bit, every array
    assert meta.scan_start_utc < meta.scan_end_utc
    assert whole.metadata.scan_start_utc < meta.scan_start_utc and meta.scan_end_utc < whole.metadata.scan_end_utc


def test_the_crop_survives_the_swath_file_and_the_archive_index(japan_granule: Path, tmp_path: Path) -> None:
    japan = region_from_setting(JAPAN)
    cropped = extract_granule(japan_granule, CHANNELS, True, region=japan, margin_scans=0).swath
    write_swath(cropped, tmp_path / "s.npy")
    assert read_swath(tmp_path / "s.npy").metadata == cropped.metadata
    table = archive.index_table([cropped.metadata], CHANNELS)
    assert archive.row_metadata(table[0]) == cropped.metadata
    assert cropped.metadata.legacy_dict()["first_scan"] == cropped.metadata.first_scan > 0


def test_margins_stop_at_the_overlap_rows(japan_granule: Path) -> None:
    whole = extract_granule(japan_granule, CHANNELS[:1], True).swath
    wide = extract_granule(japan_granule, CHANNELS[:1], False, region=region_from_setting(JAPAN), margin_scans=5000)
    overlap = whole.metadata.overlap_scans
    assert wide.swath.metadata.first_scan == overlap
    assert wide.swath.metadata.shape[0] == whole.metadata.shape[0] - 2 * overlap


def test_a_granule_with_no_scan_in_the_region_is_outside_it(japan_granule: Path) -> None:
    far = region_from_setting([-60.0, -10.0, -50.0, 0.0])  # Brazil: the Japan pass does not reach it
    with pytest.raises(OutsideRegion, match=r"none of its scans touches box -60\.\.-50 E"):
        extract_granule(japan_granule, CHANNELS, False, region=far)


def test_cropped_swaths_go_through_archives_crop_or_pad_and_the_legacy_export_and_back(
    japan_granule: Path, tmp_path: Path
) -> None:
    from amsr2flow.formats.archive import Archive, ArchiveWriter, crop_or_pad
    from amsr2flow.formats.legacy import convert_legacy, export_legacy

    cropped = extract_granule(japan_granule, CHANNELS, True, region=region_from_setting(JAPAN), margin_scans=1).swath
    with ArchiveWriter(tmp_path / "a.npz", period="20240101_000000_to_20240102_000000") as writer:
        writer.add(cropped)
    with Archive(tmp_path / "a.npz") as arch:
        stored = arch[0].load()
        assert stored.metadata == cropped.metadata
        padded = crop_or_pad(stored["temperature"], 2000)
        assert padded.shape == (2000, 243) and np.array_equal(padded[: cropped.metadata.shape[0]], cropped.temperature)
    legacy = export_legacy(tmp_path / "a.npz", tmp_path / "legacy.npz")
    back = convert_legacy(legacy, tmp_path / "back.npz", trust_legacy_pickle=True)
    with Archive(back) as arch:
        assert arch.metadata(0) == cropped.metadata  # first_scan, region and granule_scans survive the round trip


def test_a_crop_is_known_by_its_regions_fingerprint_and_margin_not_its_name(
    japan_granule: Path, tmp_path: Path
) -> None:
    """Two GeoJSON files of one name but other polygons read alike ("polygon from basin.geojson"): a swath or a
    tombstone made for one is not taken for the other's."""
    from amsr2flow.formats.swath import ExtractionSpec, write_tombstone
    from amsr2flow.stages.granule import finished_outcome

    first = region_from_setting("POLYGON ((128 30, 146 30, 146 46, 128 46, 128 30))")
    second = region_from_setting("POLYGON ((60 30, 160 30, 160 46, 60 46, 60 30))")
    renamed = [type(r)(r.kind, "polygon from basin.geojson", r.shape, r.setting) for r in (first, second)]
    made, other = (ExtractionSpec(CHANNELS[:1], True, region=r, margin_scans=2) for r in renamed)
    cropped = made.extract(japan_granule).swath
    assert made.holds(cropped.metadata) and not other.holds(cropped.metadata)
    assert not ExtractionSpec(CHANNELS[:1], True, region=renamed[0], margin_scans=3).holds(cropped.metadata)
    npy = tmp_path / "t.npy"
    write_tombstone(npy, "G", "/p", reason_class="outside_region", error="x", n_pixels=243,
                    region=made.region_description, region_key=made.region_key)  # fmt: skip
    assert finished_outcome(npy, made) == "outside_region" and finished_outcome(npy, other) is None
