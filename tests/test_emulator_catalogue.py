"""The emulator's catalogue, driven by the real ``gportal`` client and by plain HTTP requests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import gportal
import gportal.http_client
import pytest
import requests
from emulator_fixtures import start_emulator, stop_emulator, wait_for_stats

from amsr2flow.emulator import orbit
from amsr2flow.emulator.catalogue import MAX_COUNT, QueryError, parse_query

# fresh_granules: the service generates its own granules here (no pool: emulator_fixtures)
pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("fresh_granules")]

DAY = datetime(2020, 1, 1, tzinfo=timezone.utc)
DAY_END = DAY + timedelta(days=1) - timedelta(seconds=1)
CSW = {"service": "CSW", "version": "3.0.0", "request": "GetRecords", "outputFormat": "application/json"}


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    proc, state = start_emulator(tmp_path_factory.mktemp("catalogue"))
    yield state
    stop_emulator(proc)


@pytest.fixture
def legacy_gportal(state, monkeypatch):
    """The unmodified gportal client pointed at the emulator's legacy catalogue (``/csw/csw``)."""
    monkeypatch.setattr(gportal.http_client, "BASE_URL", state["legacy_base_url"])


def query(url: str, **params) -> dict:
    response = requests.get(url, params={**CSW, **params}, timeout=30)
    response.raise_for_status()
    return response.json()


def test_gportal_search_pages_through_a_day(state, legacy_gportal):
    expected = orbit.granules_between(DAY, DAY_END, orbit.AMSR2)
    search = gportal.search(dataset_ids=["11001001"], start_time=DAY, end_time=DAY_END, count=10)

    assert search.matched() == len(expected)
    assert 29 <= len([g for g in expected if g.start_utc.date() == DAY.date()]) <= 30
    products = list(search.products())  # 10 per page: the client has to page
    assert [p.id for p in products] == [g.granule_id for g in expected]

    by_id = {g.granule_id: g for g in expected}
    for product in products:
        spec = by_id[product.id]
        assert product.data_path == spec.legacy_remote_path  # "standard/..." as gportal derives it
        assert isinstance(product["product"]["size"], int) and product["product"]["size"] > 0
        assert product["orbitDirection"] == {"A": "Ascending", "D": "Descending"}[spec.orbit_direction]
        assert product["startPathNumber"] == spec.path_number
        assert product["lastOrbitNumber"] == spec.orbit_number
        assert product["hasProduct"] is True
        assert product.get_as_datetime("beginPosition") == spec.start_utc.replace(
            microsecond=spec.start_utc.microsecond // 1000 * 1000
        )
        assert product.quicklook_url.startswith(state["legacy_base_url"])
        assert product.geometry["type"] == "Polygon"


def test_current_generation_answers_with_its_file_name_form(state):
    legacy = query(
        state["legacy_catalogue_url"],
        datasetId="11001001",
        startTime="2020-01-01T05:00:00Z",
        endTime="2020-01-01T06:00:00Z",
    )
    current = query(
        state["catalogue_url"], datasetId="11001001", startTime="2020-01-01T05:00:00Z", endTime="2020-01-01T06:00:00Z"
    )
    assert current["properties"] == legacy["properties"]
    for old, new in zip(legacy["features"], current["features"], strict=True):
        spec = orbit.granule_by_id(new["properties"]["identifier"])
        file_name = new["properties"]["product"]["fileName"]
        assert file_name.startswith("product.gportal.jaxa.jp:/products/Standard/")
        assert "/product/Standard/" + file_name.split("/Standard/", 1)[1] == spec.current_remote_path
        assert old["properties"]["product"]["fileName"] == "https://gportal.jaxa.jp/download/" + spec.legacy_remote_path
        assert new["properties"]["product"]["size"] == old["properties"]["product"]["size"]
    stats = wait_for_stats(state, lambda s: s["catalogue_requests_by_generation"]["current"] >= 1)
    assert stats["catalogue_requests_by_generation"]["legacy"] >= 1


def _assert_all_strings(value, where: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _assert_all_strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _assert_all_strings(item, f"{where}[{i}]")
    else:
        assert isinstance(value, str), f"{where} is {value!r}, not a string"


def test_property_values_are_strings_and_counts_integers(state):
    body = query(
        state["catalogue_url"],
        datasetId="11001001",
        startTime="2020-01-01T00:00:00Z",
        endTime="2020-01-01T03:00:00Z",
        count=2,
    )
    assert body["type"] == "FeatureCollection"
    assert isinstance(body["properties"]["numberOfRecordsMatched"], int)
    assert body["properties"]["numberOfRecordsReturned"] == len(body["features"]) == 2
    for feature in body["features"]:
        _assert_all_strings(feature["properties"], "properties")
        props = feature["properties"]
        assert props["product"]["size"].isdigit()
        assert len(props["wrsLongitudeGrid"]) == 3  # zero-padded like the real catalogue
        assert props["processingLevel"] == "AMSR2-L1B" and props["processorVersion"] == "220,220"
        assert props["gpp"]["datasetId"] == "11001001"
        assert [b["type"] for b in props["browse"]] == ["QUICKLOOK", "THUMBNAIL"]
        ring = feature["geometry"]["coordinates"][0]
        assert ring[0] == ring[-1] and all(isinstance(v, float) for point in ring for v in point)
        assert len(props["multiExtentOf"].split()) == 2 * len(ring)


def test_time_filter_is_intersection(state):
    granule = orbit.granules_beginning_on(DAY.date())[5]
    inside = granule.start_utc + timedelta(minutes=10)
    one = query(
        state["catalogue_url"],
        datasetId="11001001",
        startTime=inside.isoformat(),
        endTime=(inside + timedelta(minutes=1)).isoformat(),
        count=0,
    )
    assert one["properties"]["numberOfRecordsMatched"] == 1
    across = query(
        state["catalogue_url"],
        datasetId="11001001",
        startTime=(granule.end_utc - timedelta(minutes=1)).isoformat(),
        endTime=(granule.end_utc + timedelta(minutes=2)).isoformat(),
    )
    ids = [f["properties"]["identifier"] for f in across["features"]]
    assert ids[0] == granule.granule_id and len(ids) == 2  # the granule and the next, both overlap


def test_count_zero_matches_without_generating(state):
    body = query(
        state["catalogue_url"],
        datasetId="11001001,25001000",
        startTime="2010-06-01",
        endTime="2010-06-03T00:00:00Z",
        count=0,
    )
    assert body["properties"]["numberOfRecordsMatched"] >= 58  # AMSR-E only: AMSR2 starts in 2012
    assert body["features"] == [] and body["properties"]["numberOfRecordsReturned"] == 0
    assert not list(Path(state["cache_dir"]).glob("A2ES1M_201006*"))


def test_unknown_dataset_gives_an_empty_result(state):
    body = query(state["catalogue_url"], datasetId="99999999", startTime="2020-01-01", endTime="2020-01-02")
    assert body["properties"] == {"numberOfRecordsMatched": 0, "numberOfRecordsReturned": 0}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"endTime": "2020-01-02"}, "startTime is required"),
        ({"startTime": "yesterday"}, "not an ISO 8601"),
        ({"startTime": "2020-01-02", "endTime": "2020-01-01"}, "before startTime"),
        ({"startTime": "2020-01-01", "count": "many"}, "not an integer"),
    ],
)
def test_bad_requests_get_400_with_a_json_error(state, params, message):
    response = requests.get(state["catalogue_url"], params={**CSW, "datasetId": "11001001", **params}, timeout=10)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_bbox_keeps_only_swaths_over_the_box(state):
    params = {"datasetId": "11001001", "startTime": "2020-01-01", "endTime": "2020-01-01T23:59:59", "count": 0}
    everything = query(state["catalogue_url"], **params)["properties"]["numberOfRecordsMatched"]
    tokyo = query(state["catalogue_url"], bbox="139,35,140,36", **params)["properties"]["numberOfRecordsMatched"]
    assert 1 <= tokyo <= everything // 3  # a mid-latitude point sees a few passes a day


def test_count_is_capped_like_the_real_service():
    parsed = parse_query({"startTime": ["2020-01-01"], "count": ["500"], "startIndex": ["3"]})
    assert parsed.count == MAX_COUNT and parsed.start_index == 3
    with pytest.raises(QueryError):
        parse_query({"startTime": ["2020-01-01"], "startIndex": ["0"]})
