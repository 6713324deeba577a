"""The local G-Portal differing from our picture of the real one: tree root and day levels, the order rule,
big-endian granules. Real sockets: requests against the catalogue, paramiko's SFTP client against the tree."""

from __future__ import annotations

import contextlib
import hashlib
from datetime import date, datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import paramiko
import pytest
import requests
from emulator_fixtures import read_json, start_emulator, stop_emulator, wait_for_stats

from amsr2flow.emulator import orbit, synth
from amsr2flow.emulator.__main__ import main
from amsr2flow.formats import l1b

# fresh_granules: the service generates its own granules here (no pool: emulator_fixtures)
pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("fresh_granules")]

CSW = {"service": "CSW", "version": "3.0.0", "request": "GetRecords", "outputFormat": "application/json"}
PRODUCT_DIR = orbit.AMSR2.remote_product_dir  # GCOM-W/GCOM-W.AMSR2/L1B/2
DAY = date(2020, 1, 1)
SPEC = orbit.granules_beginning_on(DAY)[1]
FILE_PREFIX = "product.gportal.jaxa.jp:/products/Standard/"
ONE_DAY = ["--flavour", "amsr2", "--start", "2020-01-01", "--end", "2020-01-02"]


@contextlib.contextmanager
def sftp(state: dict):
    transport = paramiko.Transport((state["sftp_host"], state["sftp_port"]))
    try:
        transport.connect(username=state["username"], password=state["password"])
        yield paramiko.SFTPClient.from_transport(transport)
    finally:
        transport.close()


def record(state: dict, spec: orbit.GranuleSpec = SPEC) -> dict:
    """The granule's record in the current catalogue (``/csw``)."""
    params = {
        **CSW,
        "datasetId": spec.flavour.dataset_id,
        "startTime": spec.start_utc.isoformat(),
        "endTime": spec.end_utc.isoformat(),
    }
    response = requests.get(state["catalogue_url"], params=params, timeout=30)
    response.raise_for_status()
    return next(f for f in response.json()["features"] if f["id"] == spec.granule_id)


def month_dir(root: str, spec: orbit.GranuleSpec = SPEC) -> str:
    return f"{root}/{PRODUCT_DIR}/{spec.start_utc:%Y/%m}"


def day_dir(root: str, spec: orbit.GranuleSpec = SPEC) -> str:
    return f"{month_dir(root, spec)}/{spec.start_utc:%d}"


def read_remote(client: paramiko.SFTPClient, path: str) -> bytes:
    with client.open(path, "r") as handle:
        return handle.read()


def cached(state: dict, spec: orbit.GranuleSpec = SPEC) -> bytes:
    return (Path(state["cache_dir"]) / spec.file_name).read_bytes()


def order(state: dict, **params) -> requests.Response:
    return requests.get(state["order_url"], params=params, timeout=30)


# -- defaults ---------------------------------------------------------------------------------------------------
def test_defaults_record_no_drift_in_the_state_file(emulator):
    assert emulator["drift"] == {
        "tree_root": "/product/Standard",
        "tree_day_level": True,
        "legacy_tree": True,
        "catalogue_day_level": True,
        "order_after_days": None,
        "big_endian": False,
        "bbox_lat_lon": False,
    }
    assert emulator["current_sftp_root"] == "/product/Standard"
    assert emulator["order_url"] == emulator["legacy_base_url"] + "order"
    assert "big-endian" not in Path(emulator["cache_dir"]).name
    assert (
        record(emulator)["properties"]["product"]["fileName"]
        == FILE_PREFIX + SPEC.current_remote_path.split("/Standard/", 1)[1]
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tree-root", "data/Standard"], "--tree-root 'data/Standard' is not absolute"),
        (["--tree-root", "/"], "--tree-root /"),
        (["--tree-root", "/data/../x"], "'.' or '..'"),
        (["--big-endian", "--serve-dir", "{tmp}"], "--big-endian"),
    ],
)
def test_bad_drift_options_exit_2_with_a_clear_message(tmp_path, capsys, extra, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    assert main(["--state", str(tmp_path / "state.json"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("amsr2flow-emulator: error:") and message in err
    assert err.strip().count("\n") == 0


def test_order_after_days_must_not_be_negative(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--state", str(tmp_path / "state.json"), "--order-after-days", "-1"])
    assert exit_info.value.code == 2
    assert "--order-after-days" in capsys.readouterr().err


# -- day levels -------------------------------------------------------------------------------------------------
def test_tree_without_day_level_while_the_catalogue_keeps_it(emulator_factory):
    state = emulator_factory("--no-tree-day-level", *ONE_DAY)
    assert state["drift"]["tree_day_level"] is False and state["drift"]["catalogue_day_level"] is True
    rec = record(state)
    file_name = rec["properties"]["product"]["fileName"]
    assert file_name == f"{FILE_PREFIX}{PRODUCT_DIR}/2020/01/01/{SPEC.file_name}"
    mapped = "/product/Standard/" + file_name.split("/Standard/", 1)[1]  # what a client assuming a day level does
    served = f"{month_dir('/product/Standard')}/{SPEC.file_name}"
    with sftp(state) as client:
        with pytest.raises(FileNotFoundError):
            client.stat(mapped)
        with pytest.raises(FileNotFoundError):
            client.open(mapped)
        with pytest.raises(FileNotFoundError):
            client.listdir(day_dir("/product/Standard"))
        assert client.stat(served).st_size == int(rec["properties"]["product"]["size"])
        in_month = client.listdir(month_dir("/product/Standard"))
        assert SPEC.file_name in in_month and "01" not in in_month
        assert all(n.endswith(".h5") for n in in_month)
        assert read_remote(client, served) == cached(state)
        assert client.stat(SPEC.legacy_remote_path).st_size == client.stat(served).st_size  # legacy unchanged


def test_catalogue_without_day_level_while_the_tree_keeps_it(emulator_factory):
    state = emulator_factory("--no-catalogue-day-level", *ONE_DAY)
    assert state["drift"]["catalogue_day_level"] is False and state["drift"]["tree_day_level"] is True
    rec = record(state)
    file_name = rec["properties"]["product"]["fileName"]
    assert file_name == f"{FILE_PREFIX}{PRODUCT_DIR}/2020/01/{SPEC.file_name}"
    mapped = "/product/Standard/" + file_name.split("/Standard/", 1)[1]
    with sftp(state) as client:
        with pytest.raises(FileNotFoundError):
            client.stat(mapped)
        assert client.stat(SPEC.current_remote_path).st_size == int(rec["properties"]["product"]["size"])
        assert client.listdir(month_dir("/product/Standard")) == ["01", "02"]
        assert SPEC.file_name in client.listdir(day_dir("/product/Standard"))
        assert read_remote(client, SPEC.current_remote_path) == cached(state)


# -- tree root --------------------------------------------------------------------------------------------------
def test_tree_root_elsewhere_leaves_the_catalogue_unchanged(emulator_factory):
    state = emulator_factory("--tree-root", "/data/Standard/", *ONE_DAY)
    assert state["current_sftp_root"] == state["drift"]["tree_root"] == "/data/Standard"
    rec = record(state)
    file_name = rec["properties"]["product"]["fileName"]
    assert file_name == f"{FILE_PREFIX}{PRODUCT_DIR}/2020/01/01/{SPEC.file_name}"
    moved = f"/data/Standard/{file_name.split('/Standard/', 1)[1]}"
    with sftp(state) as client:
        with pytest.raises(FileNotFoundError):
            client.stat(SPEC.current_remote_path)  # the usual mapping to /product/Standard finds nothing
        with pytest.raises(FileNotFoundError):
            client.listdir("/product")
        assert set(client.listdir("/")) == {"nrt", "order", "process", "standard", "data"}
        assert client.listdir("/data") == ["Standard"]
        assert client.listdir("/data/Standard") == ["GCOM-W"]
        assert SPEC.file_name in client.listdir(day_dir("/data/Standard"))
        assert client.stat(moved).st_size == int(rec["properties"]["product"]["size"])
        assert read_remote(client, moved) == cached(state)
        assert client.stat(SPEC.legacy_remote_path).st_size == client.stat(moved).st_size


def test_tree_root_standard_shares_the_legacy_prefix(emulator_factory):
    state = emulator_factory("--tree-root", "/standard", *ONE_DAY)
    current = f"{day_dir('/standard')}/{SPEC.file_name}"
    legacy = "/" + SPEC.legacy_remote_path
    assert legacy == f"{month_dir('/standard')}/{SPEC.file_name}"
    with sftp(state) as client:
        assert client.stat(current).st_size == client.stat(legacy).st_size > 0
        assert read_remote(client, current) == read_remote(client, legacy) == cached(state)
        with pytest.raises(FileNotFoundError):
            client.stat(SPEC.current_remote_path)
        root = client.listdir("/")
        assert sorted(root) == ["nrt", "order", "process", "standard"]
        in_month = client.listdir(month_dir("/standard"))
        assert {"01", "02", SPEC.file_name} <= set(in_month) and len(in_month) == len(set(in_month))
        assert SPEC.file_name in client.listdir(day_dir("/standard"))


def test_tree_root_standard_without_day_level_is_the_legacy_tree(emulator_factory):
    state = emulator_factory("--tree-root", "/standard", "--no-tree-day-level", *ONE_DAY)
    with sftp(state) as client:
        assert client.stat("/" + SPEC.legacy_remote_path).st_size > 0
        with pytest.raises(FileNotFoundError):
            client.stat(f"{day_dir('/standard')}/{SPEC.file_name}")
        in_month = client.listdir(month_dir("/standard"))
        assert SPEC.file_name in in_month and all(n.endswith(".h5") for n in in_month)
        assert len(in_month) == len(set(in_month))


# -- the order rule ---------------------------------------------------------------------------------------------
def test_old_granules_are_offline_until_ordered_and_stay_ordered_after_a_restart(tmp_path):
    # Today is 2020-01-15 plus N days: 2020-01-01 is 14 days beyond the rule, 2020-01-20 five days inside it
    # (robust against the date changing while the test runs).
    n_days = (datetime.now(timezone.utc).date() - date(2020, 1, 15)).days
    old, other_old = orbit.granules_beginning_on(DAY)[1], orbit.granules_beginning_on(date(2020, 1, 2))[3]
    recent = orbit.granules_beginning_on(date(2020, 1, 20))[2]
    args = ["--order-after-days", str(n_days), "--flavour", "amsr2"]
    proc, state = start_emulator(tmp_path / "run", *args)
    try:
        assert state["drift"]["order_after_days"] == n_days
        assert state["order_url"] == state["legacy_base_url"] + "order"
        assert record(state, old)["properties"]["product"]["size"] != "0"  # the catalogue still lists it
        with sftp(state) as client:
            with pytest.raises(FileNotFoundError):
                client.stat(old.current_remote_path)
            with pytest.raises(FileNotFoundError):
                client.open(old.legacy_remote_path)
            assert client.listdir(day_dir("/product/Standard", old)) == []  # the folder is there, empty
            assert client.stat(recent.current_remote_path).st_size > 0
            assert recent.file_name in client.listdir(day_dir("/product/Standard", recent))
        stats = wait_for_stats(state, lambda s: s["faults_injected"].get("absent_unordered", 0) == 2)
        assert stats["faults_by_granule"][old.granule_id] == ["absent_unordered", "absent_unordered"]
        assert stats["granules_ordered"] == 0

        answer = order(state, granule_id=old.granule_id)
        assert answer.status_code == 200 and answer.json() == {"ordered": [old.granule_id]}
        with sftp(state) as client:
            assert client.stat(old.current_remote_path).st_size == int(
                record(state, old)["properties"]["product"]["size"]
            )
            assert read_remote(client, old.legacy_remote_path) == cached(state, old)
            assert client.listdir(day_dir("/product/Standard", old)) == [old.file_name]
            with pytest.raises(FileNotFoundError):
                client.stat(other_old.current_remote_path)
        assert wait_for_stats(state, lambda s: s["granules_ordered"] == 1)

        unknown = order(state, granule_id="GW1AM2_202001010000_999D_L1SGBTBR_2220220")
        assert unknown.status_code == 404 and "GW1AM2_202001010000_999D_L1SGBTBR_2220220" in unknown.json()["error"]
        assert order(state, day="2001-01-01").status_code == 404  # before the mission: nothing served
        assert order(state).status_code == 400
        day_ids = [g.granule_id for g in orbit.granules_beginning_on(DAY)]
        whole_day = order(state, day=DAY.isoformat())
        assert whole_day.status_code == 200 and whole_day.json() == {"ordered": day_ids}
        assert wait_for_stats(state, lambda s: s["granules_ordered"] == len(day_ids))
        assert sorted(read_json(Path(state["data_root"]) / "orders.json")["ordered"]) == sorted(day_ids)
    finally:
        stop_emulator(proc)

    proc, state = start_emulator(tmp_path / "run", *args)  # same data folder
    try:
        with sftp(state) as client:
            assert client.stat(old.current_remote_path).st_size > 0
            assert client.listdir(day_dir("/product/Standard", old)) == [
                g.file_name for g in orbit.granules_beginning_on(DAY)
            ]
            with pytest.raises(FileNotFoundError):
                client.stat(other_old.current_remote_path)
        answer = order(state, granule_id=[other_old.granule_id, other_old.file_name])
        assert answer.json() == {"ordered": [other_old.granule_id]}
        with sftp(state) as client:
            assert client.stat(other_old.current_remote_path).st_size > 0
        assert wait_for_stats(state, lambda s: s["granules_ordered"] == 1)  # counted per run
    finally:
        stop_emulator(proc)


# -- byte order -------------------------------------------------------------------------------------------------
def test_big_endian_granules_hold_the_same_values_in_their_own_cache(tmp_path):
    data_dir = tmp_path / "data"
    files = {}
    cache_dirs = {}
    for label, extra in (("little", ()), ("big", ("--big-endian",))):
        proc, state = start_emulator(tmp_path / label, "--data-dir", str(data_dir), "--seed", "5", *extra, *ONE_DAY)
        try:
            assert state["drift"]["big_endian"] is (label == "big")
            with sftp(state) as client:
                files[label] = tmp_path / f"{label}.h5"
                client.get(SPEC.current_remote_path, str(files[label]))
            cache_dirs[label] = Path(state["cache_dir"])
        finally:
            stop_emulator(proc)
    assert cache_dirs["big"] != cache_dirs["little"] and cache_dirs["big"].name.endswith("-big-endian")
    assert cache_dirs["big"].parent == cache_dirs["little"].parent
    sha = {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in files.items()}
    assert sha["big"] != sha["little"]
    assert sha["little"] == hashlib.sha256((cache_dirs["little"] / SPEC.file_name).read_bytes()).hexdigest()
    with h5py.File(files["little"], "r") as little, h5py.File(files["big"], "r") as big:
        assert set(little) == set(big)
        for name in l1b.CHANNEL_DATASETS.values():
            assert big[name].dtype.byteorder == ">" and big[name].dtype == np.dtype(">u2")
            assert little[name].dtype.byteorder in ("<", "=")
            np.testing.assert_array_equal(big[name][...], little[name][...])
            assert big[name].attrs["SCALE FACTOR"].dtype == little[name].attrs["SCALE FACTOR"].dtype
        for name in little:
            if little[name].dtype.itemsize > 1:
                assert big[name].dtype == little[name].dtype.newbyteorder(">"), name
            np.testing.assert_array_equal(big[name][...], little[name][...])
        assert dict(big.attrs).keys() == dict(little.attrs).keys()
    # The same values as the generator writes directly with this seed.
    fields = synth.generate_fields(SPEC, seed=5, n_scans=16)
    with h5py.File(files["big"], "r") as big:
        np.testing.assert_array_equal(big[l1b.CHANNEL_DATASETS["36.5H"]][...], fields[l1b.CHANNEL_DATASETS["36.5H"]])
