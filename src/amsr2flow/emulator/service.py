"""Assemble and run the emulator: keys, granule store, catalogue and SFTP servers, stats, state file."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from pathlib import Path
from time import monotonic
from typing import Any

from ..gportal.host_keys import fingerprint_sha256
from .catalogue import CURRENT_PATH, LEGACY_PATH, ORDER_PATH, Catalogue, CatalogueServer
from .drift import ORDERS_FILE, Drift, OrderBook
from .faults import FaultPlan, FaultSpec
from .keys import load_or_create_client_key, load_or_create_host_key, read_authorized_keys
from .sftp_server import SERVER_BANNER, SftpContext, SftpServer, SftpSettings
from .stats import Stats, utc_now_iso, write_json_atomically
from .store import GranuleStore, MirrorStore, SyntheticStore, TreeLayout

log = logging.getLogger("amsr2flow.emulator")

DEFAULT_USERNAME = "emulator"


@dataclass
class EmulatorConfig:
    """Validated settings of one emulator run (the CLI builds it)."""

    state_path: Path
    data_dir: Path
    dataset_ids: tuple[str, ...]
    seed: int = 0
    scans: int | None = None
    first_day: date | None = None
    last_day: date | None = None
    faults: FaultSpec = field(default_factory=FaultSpec)
    serve_dir: Path | None = None
    catalogue_port: int = 0
    sftp_port: int = 0
    username: str = DEFAULT_USERNAME
    password: str | None = None  # None: a fresh random one per run
    authorized_key_files: tuple[Path, ...] = ()
    require_publickey: bool = False
    workers: int = 2
    pregenerate: bool = False
    log_path: Path | None = None
    drift: Drift = field(default_factory=Drift)  # how the service differs from the G-Portal we assume
    latency_ms: float = 0.0  # round trip added to every SFTP connection (emulator/latency.py); 0 = none

    @property
    def stats_path(self) -> Path:
        return self.state_path.with_name(self.state_path.stem + "-stats.json")


class Emulator:
    """The running service. ``start()`` binds both servers and writes the state file; ``stop()`` undoes it."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.stop_event = threading.Event()
        self.stats = Stats(config.stats_path)
        self.plan = FaultPlan(config.faults)
        self.password = config.password or secrets.token_urlsafe(18)
        self.store = self._build_store()
        self.store.layout = TreeLayout(config.drift.tree_root, config.drift.tree_day_level, config.drift.legacy_tree)
        self.orders = OrderBook(config.data_dir / ORDERS_FILE, config.drift.order_after_days, self.stats)
        self.host_key = load_or_create_host_key(config.data_dir)
        self.client_key, self.private_key_path, self.public_key_path = load_or_create_client_key(config.data_dir)
        authorized = [self.client_key]
        for path in config.authorized_key_files:
            authorized.extend(read_authorized_keys(path))
        settings = SftpSettings(
            username=config.username,
            password=self.password,
            host_key=self.host_key,
            authorized_keys=authorized,
            require_publickey=config.require_publickey,
        )
        ctx = SftpContext(
            store=self.store,
            plan=self.plan,
            stats=self.stats,
            settings=settings,
            corrupted_dir=self._cache_dir() / "corrupted",
            stop=self.stop_event,
            orders=self.orders,
        )
        catalogue = Catalogue(
            self.store,
            self.plan,
            self.stats,
            catalogue_day_level=config.drift.catalogue_day_level,
            orders=self.orders,
            bbox_lat_lon=config.drift.bbox_lat_lon,
        )
        self.catalogue_server = CatalogueServer(catalogue, config.catalogue_port)
        self.sftp_server = SftpServer(ctx, config.sftp_port)
        self.state: dict[str, Any] = {}

    def _build_store(self) -> GranuleStore:
        c = self.config
        if c.serve_dir is not None:
            return MirrorStore(c.serve_dir, c.dataset_ids)
        return SyntheticStore(
            c.data_dir / "cache",
            self.stats,
            seed=c.seed,
            scans=c.scans,
            dataset_ids=c.dataset_ids,
            first_day=c.first_day,
            last_day=c.last_day,
            workers=c.workers,
            big_endian=c.drift.big_endian,
        )

    def _cache_dir(self) -> Path:
        if isinstance(self.store, SyntheticStore):
            return self.store.cache_dir
        return self.config.data_dir / "mirror"

    def start(self) -> dict[str, Any]:
        self.stats.start()
        self.catalogue_server.start()
        self.sftp_server.start()
        self.latency_proxy = None
        if self.config.latency_ms > 0:
            from .latency import DelayProxy

            self.latency_proxy = DelayProxy(self.sftp_server.port, self.config.latency_ms / 1000, self.stop_event)
            self.latency_proxy.start()
        if self.config.pregenerate:
            self._pregenerate()
        self.state = self._describe()
        self._write_known_hosts()
        write_state_file(self.config.state_path, self.state)
        log.info(
            "emulator up: catalogue %s, sftp 127.0.0.1:%d, host key %s, state %s",
            self.state["catalogue_url"],
            self.sftp_server.port,
            self.state["host_key_sha256"],
            self.config.state_path,
        )
        return self.state

    def _pregenerate(self) -> None:
        """Fill the cache for the served days, so that the first catalogue page answers at once."""
        c = self.config
        if not isinstance(self.store, SyntheticStore) or c.first_day is None or c.last_day is None:
            return
        start = datetime.combine(c.first_day, time.min, tzinfo=timezone.utc)
        end = datetime.combine(c.last_day, time.max, tzinfo=timezone.utc)
        entries = self.store.entries_between(start, end, self.store.dataset_ids)
        began = monotonic()
        self.store.sizes(entries)
        log.info("pregenerated %d granules in %.1f s", len(entries), monotonic() - began)

    def _describe(self) -> dict[str, Any]:
        c = self.config
        base = self.catalogue_server.base_url
        return {
            "catalogue_url": base.rstrip("/") + CURRENT_PATH,
            "legacy_catalogue_url": base.rstrip("/") + LEGACY_PATH,
            "legacy_base_url": base,
            "order_url": base.rstrip("/") + ORDER_PATH,
            "generation_default": "current",
            "sftp_host": "127.0.0.1",
            # with a latency, clients reach the server through the delay line
            "sftp_port": self.latency_proxy.port if self.latency_proxy else self.sftp_server.port,
            "latency_ms": c.latency_ms,
            "sftp_banner": SERVER_BANNER,
            "host_key_type": self.host_key.get_name(),
            "host_key_sha256": fingerprint_sha256(self.host_key),
            "host_keys": [f"{self.host_key.get_name()} {fingerprint_sha256(self.host_key)}"],
            "known_hosts_path": str(c.data_dir / "known_hosts"),
            "username": c.username,
            "password": self.password,
            "require_publickey": c.require_publickey,
            "private_key_path": str(self.private_key_path),
            "public_key_path": str(self.public_key_path),
            "legacy_sftp_root": "standard",
            "current_sftp_root": self.store.layout.root,
            "stats_path": str(c.stats_path),
            "pid": os.getpid(),
            "mode": "mirror" if c.serve_dir else "synthetic",
            "serve_dir": str(c.serve_dir) if c.serve_dir else None,
            "data_root": str(c.data_dir),
            "cache_dir": str(self._cache_dir()),
            "scans": c.scans,
            "seed": c.seed,
            "dataset_ids": list(self.store.dataset_ids),
            "start": c.first_day.isoformat() if c.first_day else None,
            "end": c.last_day.isoformat() if c.last_day else None,
            "fault_spec": c.faults.to_json(),
            "drift": c.drift.to_json(),
            "log_path": str(c.log_path) if c.log_path else None,
            "started_at": utc_now_iso(),
        }

    def _write_known_hosts(self) -> None:
        """A known_hosts line for clients that pin the host key (as they should for G-Portal)."""
        line = f"[127.0.0.1]:{self.sftp_server.port} {self.host_key.get_name()} {self.host_key.get_base64()}\n"
        (self.config.data_dir / "known_hosts").write_text(line, encoding="utf-8")

    def stop(self) -> None:
        self.stop_event.set()
        self.catalogue_server.stop()
        self.sftp_server.stop()
        if getattr(self, "latency_proxy", None) is not None:
            self.latency_proxy.close()
        self.store.close()
        self.stats.stop()
        with contextlib.suppress(FileNotFoundError):
            self.config.state_path.unlink()
        log.info("emulator stopped")


def write_state_file(path: Path, state: dict[str, Any]) -> None:
    """Atomically, readable by the owner only: it holds the password."""
    write_json_atomically(path, state)
    os.chmod(path, 0o600)


def run_service(config: EmulatorConfig) -> int:
    """Run until SIGINT or SIGTERM; returns the exit code (0 on a clean stop)."""
    config.state_path.unlink(missing_ok=True)  # a stale file would fool anyone waiting for this run's
    emulator = Emulator(config)
    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    emulator.start()
    try:
        while not stop_requested.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0
