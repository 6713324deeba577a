"""Our client layer against misbehaving servers on real sockets: no wait is unbounded, no page loops."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from amsr2flow.gportal import catalogue
from amsr2flow.gportal.sftp import GPortalSFTP, Timeouts, TransientTransferError
from amsr2flow.gportal.source import Source


@pytest.fixture
def silent_tcp_server() -> Iterator[int]:
    """Accepts connections and never says a word (a hung SSH server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_silent_ssh_server_times_out_on_the_banner(silent_tcp_server: int) -> None:
    source = Source("current", "", "127.0.0.1", silent_tcp_server, (), "u", None, None, None)
    started = time.monotonic()
    with pytest.raises(TransientTransferError, match="handshake"):
        GPortalSFTP(source, Timeouts(connect_s=2, banner_s=1, auth_s=1, stall_s=5)).connect()
    assert time.monotonic() - started < 8


def test_unreachable_port_fails_fast() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once the probe closes
    source = Source("current", "", "127.0.0.1", port, (), "u", None, None, None)
    with pytest.raises(TransientTransferError, match="cannot connect"):
        GPortalSFTP(source, Timeouts(connect_s=2)).connect()


# -- a scripted catalogue --------------------------------------------------------------------------------------
def _feature(i: int) -> dict:
    gid = f"GW1AM2_20240101{i:02d}00_{i:03d}A_L1SGBTBR_2220220"
    return {
        "type": "Feature",
        "geometry": None,
        "properties": {
            "identifier": gid,
            "beginPosition": f"2024-01-01T{i:02d}:00:00.000Z",
            "endPosition": f"2024-01-01T{i:02d}:49:00.000Z",
            "product": {
                "fileName": f"product.gportal.jaxa.jp:/products/Standard/X/{gid}.h5",
                "size": "10",
                "version": "2",
            },
            "gpp": {"orbitDirection": "Ascending", "startPathNumber": f"{i:03d}", "datasetId": "11001001"},
        },
    }


def serve(answer: Callable[[dict], tuple[int, str, bytes]]) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
            status, content_type, body = answer(query)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError):  # the client gave up (the timeout test)
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/csw"


def _page(records: list[dict], matched: int) -> tuple[int, str, bytes]:
    body = {
        "type": "FeatureCollection",
        "properties": {"numberOfRecordsMatched": matched, "numberOfRecordsReturned": len(records)},
        "features": records,
    }
    return 200, "application/json", json.dumps(body).encode()


def _search(url: str, timeout: float = 5) -> catalogue.DaySearchResult:
    return catalogue.search_day(
        date(2024, 1, 1), dataset_id="11001001", catalogue_url=url, generation="current", timeout=timeout, page_size=3
    )


@pytest.mark.parametrize(
    ("name", "pager"),
    [
        (
            "empty early page",
            lambda start: [] if start == 4 else [_feature(i) for i in range(start, min(start + 3, 8))],
        ),
        ("repeated page", lambda start: [_feature(i) for i in range(1, 4)]),
    ],
)
def test_paging_guard_ends_bad_paging_with_an_error(name: str, pager: Callable[[int], list[dict]]) -> None:
    requests_seen = []

    def answer(query: dict) -> tuple[int, str, bytes]:
        requests_seen.append(query)
        if query["count"] == "0":
            return _page([], 7)
        return _page(pager(int(query.get("startIndex", 1))), 7)

    server, url = serve(answer)
    try:
        with pytest.raises(catalogue.CataloguePagingError):
            _search(url)
    finally:
        server.shutdown()
    assert len(requests_seen) <= 2 + catalogue.REQUEST_ATTEMPTS


def test_good_paging_filters_to_granules_beginning_that_day() -> None:
    def answer(query: dict) -> tuple[int, str, bytes]:
        records = [_feature(i) for i in range(1, 8)]
        records[0]["properties"]["beginPosition"] = "2023-12-31T23:30:00.000Z"  # the intersecting neighbour
        if query["count"] == "0":
            return _page([], 7)
        start = int(query["startIndex"])
        return _page(records[start - 1 : start + 2], 7)

    server, url = serve(answer)
    try:
        result = _search(url)
    finally:
        server.shutdown()
    assert result.matched == 7
    assert len(result.manifest) == 6
    assert result.manifest["remote_path"].str.startswith("/product/Standard/X/").all()
    assert list(result.manifest["path_number"]) == [2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize(
    ("status", "content_type", "body", "error"),
    [
        (503, "text/html", b"<html>busy</html>", "HTTP 503"),
        (200, "text/html", b"<html>maintenance</html>", "instead of JSON"),
        (400, "application/json", b'{"error": "bad"}', "refused the query"),
    ],
)
def test_catalogue_errors_are_errors_never_empty_days(status: int, content_type: str, body: bytes, error: str) -> None:
    server, url = serve(lambda q: (status, content_type, body))
    try:
        with pytest.raises(catalogue.CatalogueError, match=error):
            _search(url)
    finally:
        server.shutdown()


def test_silent_catalogue_times_out() -> None:
    release = threading.Event()

    def answer(query: dict) -> tuple[int, str, bytes]:
        release.wait(10)
        return _page([], 0)

    server, url = serve(answer)
    timeout = 0.25  # each try waits it out: a short one (1 s made the test ~5 s)
    started = time.monotonic()
    try:
        with pytest.raises(catalogue.CatalogueUnavailable, match="did not answer"):
            _search(url, timeout=timeout)
    finally:
        release.set()
        server.shutdown()
    # every request is bounded by the timeout, and the tries of one request are bounded too
    assert time.monotonic() - started < catalogue.REQUEST_ATTEMPTS * timeout + 8


def test_remote_paths_of_both_generations() -> None:
    legacy = "https://gportal.jaxa.jp/download/standard/GCOM-W/GCOM-W.AMSR2/L1B/2/2025/07/G.h5"
    current = "product.gportal.jaxa.jp:/products/Standard/GCOM-W/GCOM-W.AMSR2/L1B/2/2025/07/06/G.h5"
    assert catalogue.map_remote_path(legacy) == "standard/GCOM-W/GCOM-W.AMSR2/L1B/2/2025/07/G.h5"
    assert catalogue.map_remote_path(current) == "/product/Standard/GCOM-W/GCOM-W.AMSR2/L1B/2/2025/07/06/G.h5"
    with pytest.raises(catalogue.CatalogueRecordError, match="neither"):
        catalogue.map_remote_path("ftp://elsewhere/G.h5")
