"""amsr2flow.training: batches of swaths from year archives, their values, masks, crops, splits, shuffling,
sharding, resumption, normalisation statistics and bounded memory."""

from __future__ import annotations

import json
import tracemalloc
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from amsr2flow.formats.archive import Archive, crop_or_pad, partition_archive, to_kelvin, write_archive
from amsr2flow.formats.swath import make_swath
from amsr2flow.training import (
    ArchiveSource,
    SwathBatches,
    SwathSource,
    TrainingError,
    check_disjoint,
    load_statistics,
    normalisation_statistics,
    save_statistics,
)

# (sensor's platform, first scan, rows, orbit direction): several days, both directions, both sensors, different
# scan counts; the 23:xx swaths cross midnight (the one of 2012-07-03 crosses the boundary of the splits below)
AMSRE_SWATHS = [
    ("A2ES1M", "2011-10-02T03:00", 30, "A"),
    ("A2ES1M", "2011-10-02T23:40", 44, "D"),
    ("A2ES1M", "2011-10-03T10:00", 25, "A"),
    ("A2ES1M", "2011-10-04T05:00", 38, "D"),
]
AMSR2_SWATHS = [
    ("GW1AM2", "2012-07-02T01:00", 40, "A"),
    ("GW1AM2", "2012-07-02T12:00", 33, "D"),
    ("GW1AM2", "2012-07-02T23:30", 50, "A"),
    ("GW1AM2", "2012-07-03T06:00", 28, "D"),
    ("GW1AM2", "2012-07-03T23:50", 36, "A"),
    ("GW1AM2", "2012-07-04T02:00", 41, "D"),
    ("GW1AM2", "2012-07-04T23:45", 31, "D"),
    ("GW1AM2", "2012-07-05T08:00", 45, "A"),
    ("GW1AM2", "2012-07-05T20:00", 22, "D"),
]
AMSRE_CHANNELS = ("89.0AV", "36.5H")  # 89 GHz first: stored as the `temperature` member
AMSR2_CHANNELS = ("36.5H", "7.3H", "89.0AV")
ALL = ("36.5H", "7.3H", "89.0AV")
SWATH_MINUTES = 49


def _pixels(channel: str) -> int:
    return 486 if channel.startswith("89") else 243


def swath(platform: str, start: str, rows: int, direction: str, channels: tuple[str, ...], n: int) -> object:
    rng = np.random.default_rng(n)
    arrays = {c: rng.integers(10000, 28000, (rows, _pixels(c))).astype(np.uint16) for c in channels}
    for values in arrays.values():
        values[rng.random(values.shape) < 0.05] = 0  # invalid raw values inside the swath
    first = datetime.fromisoformat(start)
    last = first + timedelta(minutes=SWATH_MINUTES)
    return make_swath(
        f"{platform}_{first:%Y%m%d%H%M}_{n:03d}{direction}_L1SGBTBR_2220220",
        direction,
        arrays,
        [0.01] * len(arrays),
        scan_start_utc=f"{first:%Y-%m-%dT%H:%M:%S}.000Z",
        scan_end_utc=f"{last:%Y-%m-%dT%H:%M:%S}.000Z",
    )


def unknown_time_swath() -> object:
    rng = np.random.default_rng(99)
    arrays = {c: rng.integers(1, 28000, (27, _pixels(c))).astype(np.uint16) for c in AMSR2_CHANNELS}
    for values in arrays.values():
        values[3, 10:20] = 0
    return make_swath("GW1AM2_201207060000_099A_L1SGBTBR_2220220", "A", arrays, [0.01] * 3)


@pytest.fixture
def archives(tmp_path: Path) -> list[Path]:
    amsre = [swath(*s, AMSRE_CHANNELS, n) for n, s in enumerate(AMSRE_SWATHS)]
    amsr2 = [swath(*s, AMSR2_CHANNELS, 10 + n) for n, s in enumerate(AMSR2_SWATHS)]
    return [
        write_archive(tmp_path / "AMSR2_2012.npz", amsr2),  # given out of time order on purpose
        write_archive(tmp_path / "AMSRE_2011.npz", amsre),
        write_archive(tmp_path / "legacy.npz", [unknown_time_swath()]),
    ]


@pytest.fixture
def source(archives: list[Path]):
    with ArchiveSource(archives) as opened:
        yield opened


def every_swath(archives: list[Path]) -> dict[str, dict[str, np.ndarray]]:
    """granule id -> channel -> raw array, straight from the archives."""
    out = {}
    for path in archives:
        with Archive(path) as archive:
            for item in archive:
                out[item.granule_id] = {c: np.asarray(item[c]) for c in archive.channels}
    return out


def epoch_batches(batches: SwathBatches) -> list[dict[str, np.ndarray]]:
    return list(batches)


def assert_same_batches(a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


# -- the source ------------------------------------------------------------------------------------------------
def test_archive_source_is_the_archives_in_time_order_with_the_protocols_index(
    source: ArchiveSource, archives: list[Path]
) -> None:
    assert isinstance(source, SwathSource)
    assert source.channels == ("36.5H", "7.3H", "89.0AV")  # the union, in the order first met
    index = source.index()
    assert {len(v) for v in index.values()} == {14}
    assert index["time"].dtype == np.dtype("datetime64[ns]") and index["time_end"].dtype == index["time"].dtype
    known = index["time"][:-1]
    assert (np.diff(known) > np.timedelta64(0)).all() and np.isnat(index["time"][-1])  # unknown time last
    assert list(index["sensor"]) == ["AMSR-E"] * 4 + ["AMSR2"] * 10
    expected = [s[3] for s in AMSRE_SWATHS + AMSR2_SWATHS] + ["A"]
    assert list(index["orbit_direction"]) == expected
    assert list(index["n_scans"]) == [s[2] for s in AMSRE_SWATHS + AMSR2_SWATHS] + [27]
    assert str(index["time_end"][1]).startswith("2011-10-03T00:29")
    truth = every_swath(archives)
    for position, granule_id in enumerate(index["granule_id"]):
        raw = source.read_raw(position, ALL)
        for channel in ALL:
            if channel in truth[granule_id]:
                np.testing.assert_array_equal(raw[channel], truth[granule_id][channel])
            else:  # AMSR-E has no 7.3 GHz: all invalid
                assert granule_id.startswith("A2ES1M") and channel == "7.3H"
                assert raw[channel].shape == (index["n_scans"][position], 243) and not raw[channel].any()
    assert source.scale_factor("89.0AV") == 0.01


def test_an_archive_and_its_own_part_are_refused_and_parts_are_the_archive(
    archives: list[Path], tmp_path: Path
) -> None:
    parts = partition_archive(archives[0], tmp_path / "parts", part_size=4)
    with pytest.raises(TrainingError, match=r"granule GW1AM2_\S+ is in AMSR2_2012.npz and AMSR2_2012_part_1of3"):
        ArchiveSource([archives[0], parts[0]])
    with pytest.raises(TrainingError, match="twice"):
        ArchiveSource([archives[1], archives[1]])
    with ArchiveSource(parts[::-1]) as from_parts, ArchiveSource(archives[0]) as whole:
        assert list(from_parts.index()["granule_id"]) == list(whole.index()["granule_id"])
        np.testing.assert_array_equal(from_parts.read_raw(5, ["7.3H"])["7.3H"], whole.read_raw(5, ["7.3H"])["7.3H"])


# -- values, masks, stacking -----------------------------------------------------------------------------------
def test_batches_hold_the_archives_kelvin_and_raw_values_with_a_true_mask(
    source: ArchiveSource, archives: list[Path]
) -> None:
    truth = every_swath(archives)
    kelvin = SwathBatches(source, n_scans=48, batch_size=4, shuffle=False)
    raw = SwathBatches(source, n_scans=48, batch_size=4, shuffle=False, units="raw")
    seen = []
    for k, r in zip(kelvin, raw, strict=True):
        assert k["tb"].dtype == np.float32 and r["tb"].dtype == np.uint16 and k["mask"].dtype == bool
        assert k["tb"].shape[1:] == (3, 48, 243) and k["mask"].shape == k["tb"].shape
        for b, granule_id in enumerate(k["granule_id"]):
            seen.append(granule_id)
            for c, channel in enumerate(ALL):
                stored = truth[granule_id].get(channel)
                if stored is None:
                    assert not k["mask"][b, c].any() and np.isnan(k["tb"][b, c]).all()
                    continue
                stored = stored[:, ::2] if channel.startswith("89") else stored  # the low-frequency columns
                expected_raw = crop_or_pad(stored, 48)
                np.testing.assert_array_equal(r["tb"][b, c], expected_raw)
                np.testing.assert_array_equal(k["tb"][b, c], to_kelvin(expected_raw, 0.01))
                np.testing.assert_array_equal(k["mask"][b, c], expected_raw != 0)
                rows = min(len(stored), 48)
                assert not k["mask"][b, c, rows:].any()  # padding
                assert (~k["mask"][b, c, :rows]).sum() == (stored[:rows] == 0).sum() > 0  # raw 0 inside
        np.testing.assert_array_equal(k["mask"], r["mask"])
    assert seen == list(source.index()["granule_id"])  # no shuffle: time order, every swath once
    assert str(k["time"].dtype) == "datetime64[ns]" and k["position"].tolist() == [12, 13]


def test_89_ghz_channels_alone_keep_their_486_pixels(source: ArchiveSource, archives: list[Path]) -> None:
    truth = every_swath(archives)
    batch = next(iter(SwathBatches(source, channels=["89.0AV"], n_scans=20, batch_size=2, shuffle=False)))
    assert batch["tb"].shape == (2, 1, 20, 486)
    stored = truth[batch["granule_id"][1]]["89.0AV"][:20]
    np.testing.assert_array_equal(batch["tb"][1, 0], to_kelvin(stored, 0.01))


# -- crops -----------------------------------------------------------------------------------------------------
def _first_rows(batches: SwathBatches) -> dict[str, int]:
    return {g: int(f) for b in batches for g, f in zip(b["granule_id"], b["first_row"], strict=True)}


def test_crop_policies_start_centre_and_a_seeded_random_offset(source: ArchiveSource, archives: list[Path]) -> None:
    truth = every_swath(archives)
    rows = dict(zip(source.index()["granule_id"], source.index()["n_scans"], strict=True))
    make = lambda crop, **kw: SwathBatches(source, crop=crop, n_scans=26, channels=["36.5H"], **kw)  # noqa: E731
    assert set(_first_rows(make("start")).values()) == {0}
    assert _first_rows(make("centre")) == {g: max(n - 26, 0) // 2 for g, n in rows.items()}
    randoms = make("random", seed=3)
    epoch0, epoch1 = _first_rows(randoms), _first_rows(randoms)
    assert epoch0 == _first_rows(make("random", seed=3))  # deterministic from (seed, epoch, position)
    assert epoch0 != epoch1 and epoch0 != _first_rows(make("random", seed=4))
    for g, first in epoch0.items():
        assert 0 <= first <= max(rows[g] - 26, 0)
    assert len({f for g, f in epoch0.items() if rows[g] > 40}) > 1  # offsets vary between long swaths
    for batch in make("random", seed=3, units="raw"):
        for b, g in enumerate(batch["granule_id"]):
            first = batch["first_row"][b]
            np.testing.assert_array_equal(batch["tb"][b, 0], crop_or_pad(truth[g]["36.5H"][first : first + 26], 26))


# -- splits and filters ----------------------------------------------------------------------------------------
def _days(batches: SwathBatches, source: ArchiveSource) -> set[np.datetime64]:
    index = source.index()
    days = set()
    for position in batches.positions:
        first, last = (index[k][position].astype("datetime64[D]") for k in ("time", "time_end"))
        days.update(np.arange(first, last + 1))
    return days


def test_splits_share_no_day_and_drop_swaths_straddling_a_boundary(source: ArchiveSource) -> None:
    train = ("2011-01-01", "2012-07-03")
    test = (date(2012, 7, 4), date(2012, 7, 31))
    check_disjoint(train, test)
    a = SwathBatches(source, split=train, shuffle=False)
    b = SwathBatches(source, split=test, shuffle=False)
    assert not _days(a, source) & _days(b, source)
    ids = source.index()["granule_id"]
    straddling = "GW1AM2_201207032350_014A_L1SGBTBR_2220220"  # 2012-07-03 23:50 to 2012-07-04 00:39
    assert straddling not in ids[a.positions] and straddling not in ids[b.positions]
    assert "GW1AM2_201207022330_012A_L1SGBTBR_2220220" in ids[a.positions]  # crosses midnight inside the split
    assert len(a.positions) + len(b.positions) == 14 - 2  # the straddler and the unknown time are in neither
    assert len(SwathBatches(source).positions) == 14  # no split: everything, unknown times too
    with pytest.raises(TrainingError, match="share the days 2012-07-03 to 2012-07-03"):
        check_disjoint(("2012-07-04", "2012-07-10"), ("2011-01-01", "2012-07-03"), ("2012-07-03", "2012-07-03"))
    with pytest.raises(TrainingError, match="ends before it starts"):
        check_disjoint(("2012-07-04", "2012-07-01"))
    with pytest.raises(TrainingError, match="whole UTC days"):
        SwathBatches(source, split=(datetime(2012, 7, 4, 12), "2012-07-05"))


def test_filters_select_orbit_direction_and_sensor(source: ArchiveSource) -> None:
    index = source.index()
    for direction in ("A", "D"):
        for sensor in ("AMSR2", "AMSR-E"):
            chosen = SwathBatches(source, orbit_direction=direction, sensor=sensor).positions
            expected = np.flatnonzero((index["orbit_direction"] == direction) & (index["sensor"] == sensor))
            assert chosen.tolist() == expected.tolist() and len(chosen) >= 2
    with pytest.raises(TrainingError, match="orbit_direction 'X'"):
        SwathBatches(source, orbit_direction="X")
    with pytest.raises(TrainingError, match="sensor 'AMSR-2'"):
        SwathBatches(source, sensor="AMSR-2")


# -- shuffling, sharding, resuming -----------------------------------------------------------------------------
def _order(batches: SwathBatches) -> list[int]:
    return [int(p) for b in batches for p in b["position"]]


def test_the_seeded_shuffle_is_deterministic_and_differs_per_epoch(source: ArchiveSource) -> None:
    one = SwathBatches(source, n_scans=8, batch_size=3, seed=7)
    two = SwathBatches(source, n_scans=8, batch_size=3, seed=7)
    first, second = _order(one), _order(one)
    assert one.epoch == 2 and sorted(first) == sorted(second) == list(range(14))
    assert first == _order(two) and second != first
    two.set_epoch(1)
    assert _order(two) == second
    assert _order(SwathBatches(source, n_scans=8, batch_size=3, seed=8)) != first
    assert _order(SwathBatches(source, n_scans=8, batch_size=3, shuffle=False)) == list(range(14))


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_ranks_together_take_every_selected_swath_exactly_once_per_epoch(
    source: ArchiveSource, world_size: int
) -> None:
    for split, count in ((None, 14), (("2012-07-01", "2012-07-05"), 9)):  # uneven over 3 and over 2 ranks
        ranks = [
            SwathBatches(source, n_scans=8, batch_size=2, split=split, seed=5, rank=r, world_size=world_size)
            for r in range(world_size)
        ]
        for epoch in range(2):
            taken = [_order(r) for r in ranks]
            assert (
                sorted(p for t in taken for p in t) == ranks[0].positions.tolist() and len(ranks[0].positions) == count
            )
            assert max(map(len, taken)) - min(map(len, taken)) <= 1, f"epoch {epoch}"
            assert [len(t) for t in taken] == [len(r.order(epoch)) for r in ranks]
        assert all(r.epoch == 2 for r in ranks)


def test_drop_last_yields_only_full_batches(source: ArchiveSource) -> None:
    full = SwathBatches(source, n_scans=8, batch_size=4, drop_last=True)
    sizes = [len(b["granule_id"]) for b in full]
    assert sizes == [4, 4, 4] and len(full) == 3
    assert [len(b["granule_id"]) for b in SwathBatches(source, n_scans=8, batch_size=4)] == [4, 4, 4, 2]


def test_a_saved_state_resumes_with_exactly_the_remaining_batches(source: ArchiveSource) -> None:
    settings = dict(n_scans=24, batch_size=2, crop="random", seed=11, rank=1, world_size=2, prefetch=1)
    whole = SwathBatches(source, **settings)
    list(whole)  # epoch 0 done: the resumption is inside epoch 1
    uninterrupted = list(whole)
    assert len(uninterrupted) == 4
    interrupted = SwathBatches(source, **settings)
    interrupted.set_epoch(1)
    stream = iter(interrupted)
    before = [next(stream), next(stream)]
    state = json.loads(json.dumps(interrupted.state_dict()))  # JSON-able
    assert state["epoch"] == 1 and state["swaths_done"] == 4
    stream.close()
    fresh = SwathBatches(source, **settings)
    fresh.load_state_dict(state)
    assert_same_batches(before + list(fresh), uninterrupted)
    assert fresh.state_dict()["epoch"] == 2 and fresh.state_dict()["swaths_done"] == 0
    stream = iter(interrupted)
    last = [next(stream) for _ in range(2)][-1]  # the epoch's last batch, the loop not yet told it is over
    assert_same_batches([last], uninterrupted[-1:])
    assert interrupted.state_dict()["epoch"] == 2 and interrupted.state_dict()["swaths_done"] == 0
    for other in (dict(settings, split=("2012-07-01", "2012-07-31")), dict(settings, seed=12)):
        with pytest.raises(TrainingError, match="resume with the arguments"):
            SwathBatches(source, **other).load_state_dict(state)
    with pytest.raises(TrainingError, match="world_size"):
        SwathBatches(source, **dict(settings, world_size=3)).load_state_dict(state)


def test_reading_ahead_in_threads_gives_the_same_batches(source: ArchiveSource) -> None:
    settings = dict(n_scans=30, batch_size=3, crop="random", seed=2)
    assert_same_batches(list(SwathBatches(source, **settings)), list(SwathBatches(source, prefetch=2, **settings)))


# -- normalisation statistics ----------------------------------------------------------------------------------
def test_statistics_equal_a_direct_computation_and_normalise_batches(
    source: ArchiveSource, archives: list[Path], tmp_path: Path
) -> None:
    split = ("2011-10-01", "2012-07-03")
    stats = normalisation_statistics(source, split=split)
    index = source.index()
    chosen = SwathBatches(source, split=split).positions
    assert stats["n_swaths"] == len(chosen) == 8 and stats["split"] == ["2011-10-01", "2012-07-03"]
    descending = normalisation_statistics(source, ["36.5H"], split, orbit_direction="D", sensor="AMSR-E")
    assert (
        descending["n_swaths"] == 2 and descending["channels"]["36.5H"]["count"] < stats["channels"]["36.5H"]["count"]
    )
    truth = every_swath(archives)
    for channel in ALL:
        arrays = [truth[index["granule_id"][p]].get(channel) for p in chosen]
        values = np.concatenate([a[a != 0].astype(np.float64) * 0.01 for a in arrays if a is not None])
        got = stats["channels"][channel]
        assert got["count"] == values.size
        assert got["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert got["std"] == pytest.approx(values.std(), rel=1e-10)
        assert (got["min"], got["max"]) == (values.min(), values.max())
    first = save_statistics(stats, tmp_path / "stats.json").read_bytes()
    save_statistics(normalisation_statistics(source, split=split), tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == first and list(tmp_path.glob("*.tmp-*")) == []
    loaded = load_statistics(tmp_path / "stats.json")
    assert loaded == json.loads(json.dumps(stats))
    plain = SwathBatches(source, n_scans=40, batch_size=5, split=split, shuffle=False)
    normal = SwathBatches(source, n_scans=40, batch_size=5, split=split, shuffle=False, normalisation=loaded)
    for p, n in zip(plain, normal, strict=True):
        for c, channel in enumerate(ALL):
            mean, std = loaded["channels"][channel]["mean"], loaded["channels"][channel]["std"]
            expected = np.where(p["mask"][:, c], (p["tb"][:, c] - mean) / std, 0.0)
            np.testing.assert_allclose(n["tb"][:, c], expected, rtol=1e-5, atol=1e-5)
        assert not np.isnan(n["tb"]).any()
    with pytest.raises(TrainingError, match=r"no usable mean/std for channel 7\.3H"):
        SwathBatches(
            source,
            channels=["7.3H"],
            normalisation=normalisation_statistics(source, channels=["7.3H"], split=("2011-10-02", "2011-10-05")),
        )
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(TrainingError, match="not normalisation statistics"):
        load_statistics(tmp_path / "bad.json")


# -- memory ----------------------------------------------------------------------------------------------------
def _epoch_peak(path: Path, batch_size: int, rows: int) -> int:
    with ArchiveSource(path) as opened:
        batches = SwathBatches(opened, n_scans=rows, batch_size=batch_size, seed=1)
        tracemalloc.start()
        try:
            for _ in batches:
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


def test_memory_over_an_epoch_is_bounded_by_the_batch_not_the_number_of_swaths(tmp_path: Path) -> None:
    rows, batch_size = 200, 4

    def write(name: str, count: int) -> Path:
        start = datetime(2013, 1, 1)
        swaths = [
            swath("GW1AM2", f"{start + timedelta(hours=2 * n):%Y-%m-%dT%H:%M}", rows, "AD"[n % 2], ("36.5H",), n)
            for n in range(count)
        ]
        return write_archive(tmp_path / name, swaths)

    small, large = write("small.npz", 8), write("large.npz", 64)
    batch_bytes = batch_size * rows * 243 * (4 + 1 + 2)  # Kelvin, mask and the raw stack
    peak_small, peak_large = _epoch_peak(small, batch_size, rows), _epoch_peak(large, batch_size, rows)
    held_by_all = 64 * rows * 243 * 2  # what keeping every swath's raw values alone would cost
    assert peak_large < 3 * batch_bytes < held_by_all, (peak_large, batch_bytes)
    assert peak_large < 1.3 * peak_small, (peak_small, peak_large)


# -- arguments -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"crop": "middle"}, "crop 'middle'"),
        ({"units": "celsius"}, "units 'celsius'"),
        ({"rank": 2, "world_size": 2}, "0 <= rank < world_size"),
        ({"channels": ["10.7H"]}, "channels 10.7H not in the source"),
        ({"units": "raw", "normalisation": {"channels": {}}}, "normalisation is in Kelvin"),
        ({"prefetch": 5}, "prefetch 5"),
        ({"batch_size": 0}, "at least 1"),
    ],
)
def test_unusable_arguments_are_refused_with_the_fix(source: ArchiveSource, arguments: dict, message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        SwathBatches(source, **arguments)


def test_the_fast_kelvin_path_is_taken_only_where_it_gives_the_tables_values() -> None:
    from amsr2flow.training import exact_divisor, kelvin_table

    table = kelvin_table(0.01)
    divisor = exact_divisor(table)
    assert divisor == 100
    values = np.arange(1, 1 << 16, dtype=np.float32) / divisor
    assert np.array_equal(values, table[1:])
    assert exact_divisor(kelvin_table(0.007)) is None  # no exact divisor: the table's gather
    assert exact_divisor(kelvin_table(0.01, (200.0, 30.0))) is None  # normalised values come from the table
