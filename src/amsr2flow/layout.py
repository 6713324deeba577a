"""Every user-facing path of a run, in one place (the README documents the same tree)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any


def period_tag(first_day: date, day_after_last: date) -> str:
    """``YYYYMMDD-YYYYMMDD``: first day and the day after the last (the legacy periods end at midnight)."""
    return f"{first_day:%Y%m%d}-{day_after_last:%Y%m%d}"


@dataclass(frozen=True)
class Layout:
    root: Path
    scratch: Path

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Layout:
        root = Path(cfg["output_dir"]).expanduser()
        scratch = Path(cfg["scratch_dir"]).expanduser() if cfg.get("scratch_dir") else root / ".scratch"
        return cls(root=root, scratch=scratch)

    # manifests
    def day_manifest(self, day: date) -> Path:
        return self.root / "manifests" / f"{day:%Y}" / f"{day:%Y-%m-%d}.csv"

    def day_manifest_info(self, day: date) -> Path:
        return self.day_manifest(day).with_suffix(".json")

    def year_listing(self, year: int, period: str) -> Path:
        return self.root / "manifests" / str(year) / f"granules_{period}.csv"

    # swaths
    def swath(self, day: date | str, granule_id: str) -> Path:
        day_s = day if isinstance(day, str) else day.isoformat()
        return self.root / "swaths" / day_s[:4] / day_s / f"{granule_id}.npy"

    def day_record(self, day: str) -> Path:
        """The day job's output: each of the day's granules with its outcome (beside the day's swath folder)."""
        return self.root / "swaths" / day[:4] / f"{day}.json"

    def day_downloads(self, year: str, day: str) -> Path:
        """Split transfers: the download job's record of a day, beside the day's checked downloads."""
        return self.scratch / year / f"{day}.json"

    def download(self, year: str, day: str, granule_id: str) -> Path:
        """A checked download waiting for its extraction job (split transfers only)."""
        return self.scratch / year / day / f"{granule_id}.h5"

    # archives, parts, reports, ledger
    def archives_dir(self) -> Path:
        return self.root / "archives"

    def parts_dir(self, year: int) -> Path:
        return self.root / "parts" / str(year)

    def reports_dir(self) -> Path:
        return self.root / "reports"

    def ledger_dir(self, year: int | str) -> Path:
        return self.root / "ledger" / str(year)

    def ledger_entry(self, day: str, granule_id: str) -> Path:
        return self.ledger_dir(day[:4]) / f"{granule_id}.json"

    def state_dir(self) -> Path:
        """Run-wide coordination files (stop flag, circuit breaker); not results."""
        return self.root / ".state"

    def stop_flag(self) -> Path:
        return self.state_dir() / "STOP"

    def breaker_state(self) -> Path:
        return self.state_dir() / "breaker.json"

    def remote_layout_file(self) -> Path:
        """Where granules are on SFTP for this run, as the preflight found it."""
        return self.state_dir() / "remote_layout.json"
