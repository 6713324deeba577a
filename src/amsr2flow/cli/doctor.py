"""``amsr2flow doctor --configfile FILE [--download]``: the first command to run against a (new) G-Portal.

It checks, in order, everything a run depends on and prints one line per check with PASS, WARN or FAIL and,
for a warning or a failure, what to do. A check that needs an earlier one to pass is reported as SKIP. It reads
the same configuration file a run uses, never prints a secret, and exits 0 only when no check failed (the
summary names the warnings).

1. the configuration file (schema and semantics, as at the start of a run);
2. credentials present (environment variables named by the configuration, key file);
3. the private key loads (with its passphrase), before any connection;
4. the SFTP host key matches the pin (before any credential is sent);
5. login;
6. the catalogue answers for a probe day with a plausible count and records of the expected form;
7. the mapped remote path of one granule exists (with layout discovery);
8. granules sampled over the run's days are on the server (one ``stat`` each): none is a failure (a wrong
   layout, granules to be ordered first, or an account without access), some absent a warning;
9. with ``--download``: one granule downloads, its size equals the catalogue's and the SFTP ``stat``'s, it
   opens as L1B with the datasets, dtypes and attributes extraction relies on, and it extracts;
10. with ``--download``: the catalogue's record, the file's name and the file's contents agree on its facts
   (orbit direction, begin and end time, id, size: ``formats.facts``), as every day job checks every granule.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

#: AMSR2 L1B granules per UTC day: 29-30 from the orbit; a day outside this range is suspicious.
PLAUSIBLE_DAILY_GRANULES = range(25, 36)
#: Days whose granules are looked for on the server, spread over the run (one catalogue page and one stat each).
SAMPLED_DAYS = 5
ABSENT_MEANINGS = (
    "the remote layout is not the one the catalogue's names map to (set remote_path_template), the granules "
    "must be ordered on the G-Portal web site first (files older than about 2.5 years), or this account has "
    "no access to the product"
)


@dataclass
class Check:
    name: str
    status: str = "SKIP"  # PASS, WARN, FAIL or SKIP
    detail: str = ""
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4}  {self.name}"
        if self.detail:
            text += f": {self.detail}"
        if self.status in ("FAIL", "WARN") and self.fix:
            text += f"\n      -> {self.fix}"
        return text


class CheckFailed(Exception):
    def __init__(self, detail: str, fix: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


class CheckWarned(CheckFailed):
    """The check passed with something to know before a long run (the checks after it still run)."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--configfile", type=Path, required=True, help="the configuration file a run uses")
    parser.add_argument("--download", action="store_true", help="also download, check and extract one granule")
    parser.add_argument(
        "--probe-day", type=date.fromisoformat, help="catalogue day to probe (default: the run's last day)"
    )


def run(args: argparse.Namespace) -> int:
    checks = Doctor(args.configfile, download=args.download, probe_day=args.probe_day).run(print_line=print)
    failed = [c for c in checks if c.status == "FAIL"]
    skipped = [c for c in checks if c.status == "SKIP"]
    warned = [c.name for c in checks if c.status == "WARN"]
    if failed:
        print(f"\n{len(failed)} check(s) failed; fix the first one and run `amsr2flow doctor` again.")
        return 1
    caveat = f", with {len(warned)} warning(s) to read first ({', '.join(warned)})" if warned else ""
    if skipped:
        print(f"\nNo check failed{caveat} ({len(skipped)} skipped).")
        return 0
    if warned:
        print(f"\nNo check failed{caveat}; then `snakemake --cores 4 --configfile ...` can start.")
        return 0
    print("\nAll checks passed: `snakemake --cores 4 --configfile ...` can start.")
    return 0


class Doctor:
    def __init__(self, config_path: Path, *, download: bool = False, probe_day: date | None = None) -> None:
        self.config_path = config_path
        self.download = download
        self.probe_day = probe_day
        self.cfg: dict[str, Any] = {}
        self.source: Any = None
        self.connection: Any = None
        self.session: Any = None
        self.manifest: Any = None
        self.remote_path = ""
        self.size_bytes = 0
        self.extraction: Any = None
        self.layout: Any = None
        self.listings: dict[date, Any] = {}  # catalogue answers by day, each asked once

    def steps(self) -> list[tuple[str, Callable[[], str]]]:
        steps: list[tuple[str, Callable[[], str]]] = [
            ("configuration", self.check_configuration),
            ("credentials", self.check_credentials),
            ("private key", self.check_private_key),
            ("SFTP host key", self.check_host_key),
            ("login", self.check_login),
            ("catalogue", self.check_catalogue),
            ("remote layout", self.check_layout),
            ("granules on the server", self.check_granules_present),
        ]
        if self.download:
            steps.append(("download and extraction", self.check_download))
            steps.append(("catalogue = file name = file", self.check_facts))
        return steps

    def run(self, print_line: Callable[[str], None]) -> list[Check]:
        checks: list[Check] = []
        blocked = False
        try:
            for name, step in self.steps():
                check = Check(name)
                checks.append(check)
                if blocked:
                    check.detail = "needs the checks above"
                else:
                    try:
                        check.detail = step()
                        check.status = "PASS"
                    except CheckWarned as exc:
                        check.status, check.detail, check.fix = "WARN", exc.detail, exc.fix
                    except CheckFailed as exc:
                        check.status, check.detail, check.fix = "FAIL", exc.detail, exc.fix
                        blocked = True
                print_line(check.line())
        finally:
            if self.session is not None:
                self.session.close()
        return checks

    # -- the checks --------------------------------------------------------------------------------------------
    def check_configuration(self) -> str:
        from .. import config as settings

        try:
            raw = settings.read_config_file(self.config_path)  # days as text: validate names a bad one's key
        except settings.ConfigError as exc:
            raise CheckFailed(str(exc), "fix the file; docs/configuration.md") from exc
        try:
            self.cfg = settings.validate(raw, check_environment=False)
        except settings.ConfigError as exc:
            problems = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()] or [str(exc)]
            raise CheckFailed("; ".join(problems), "fix the keys named; docs/configuration.md") from exc
        cfg = self.cfg
        return f"{self.config_path} ({cfg['source']}, {cfg['dataset']}, {cfg['start']} to {cfg['end']})"

    def check_credentials(self) -> str:
        from .. import config as settings
        from ..run.connection import connection_from

        problems = settings.environment_problems(self.cfg)
        if problems:
            fix = (
                "start the local G-Portal (`amsr2flow emulator --state FILE`) or fix emulator.state_file"
                if self.cfg["source"] == "emulator"
                else "export the variables named, or fix credentials.* in the file"
            )
            raise CheckFailed("; ".join(problems), fix)
        try:
            self.connection = connection_from(self.cfg)  # every session below opens from it, as a run's do
        except settings.ConfigError as exc:
            raise CheckFailed(str(exc), "start the local G-Portal or fix emulator.state_file") from exc
        self.source = self.connection.source
        how = "public key" if self.source.private_key_path else "password"
        return f"user {self.source.username!r}, {how} login"

    def check_private_key(self) -> str:
        from ..gportal.sftp import KeyProblem, load_private_key

        if not self.source.private_key_path:
            return "not needed (password login)"
        try:
            key = load_private_key(self.source.private_key_path, self.source.passphrase)
        except KeyProblem as exc:
            raise CheckFailed(str(exc), "fix the key file or the passphrase variable; nothing was sent") from exc
        return f"{self.source.private_key_path} loads ({key.get_name()})"

    def check_host_key(self) -> str:
        from ..gportal.host_keys import HOW_TO_READ
        from ..gportal.sftp import HostKeyMismatch, TransferError

        self.session = self.connection.session()
        try:
            self.session.open_transport()
            seen = self.session.verify_host_key()
        except HostKeyMismatch as exc:
            raise CheckFailed(
                str(exc), f"read its keys with `{HOW_TO_READ}`, check them with JAXA, then set host_keys"
            ) from exc
        except TransferError as exc:
            fix = (
                "is the local G-Portal running? Start it again (`amsr2flow emulator --state FILE`)"
                if self.cfg["source"] == "emulator"
                else "check the host name and port, and that this machine can reach them"
            )
            raise CheckFailed(str(exc), fix) from exc
        return f"{self.source.sftp_host}:{self.source.sftp_port} presents {seen} (a pinned key)"

    def check_login(self) -> str:
        from ..gportal.sftp import TransferError

        try:
            self.session.authenticate()
            self.session.open_client()
        except TransferError as exc:
            raise CheckFailed(str(exc), "check the user name and that the key is registered with G-Portal") from exc
        return f"logged in as {self.source.username!r}"

    def _probe_days(self) -> list[date]:
        from ..plan import RunPlan

        if self.probe_day:
            return [self.probe_day]
        days = RunPlan.from_config(self.cfg).days
        today = datetime.now(timezone.utc).date()
        last = min(days[-1], today - timedelta(days=1))
        return list(dict.fromkeys([last, days[0]]))

    def _listing(self, day: date) -> Any:
        """The catalogue's answer for ``day`` (asked once)."""
        from ..gportal import catalogue
        from ..plan import day_mission, missions

        if day not in self.listings:
            mission = day_mission(self.cfg, day) or missions(self.cfg)[-1]
            try:
                self.listings[day] = catalogue.search_day(
                    day,
                    dataset_id=mission.dataset_id,
                    catalogue_url=self.source.catalogue_url,
                    generation=self.source.generation,
                    timeout=self.cfg["transfer"]["catalogue_timeout_s"],
                    page_size=self.cfg["catalogue"]["page_size"],
                )
            except catalogue.CatalogueError as exc:
                raise CheckFailed(
                    str(exc), "check catalogue_url; if it is right, G-Portal may be down: retry later"
                ) from exc
        return self.listings[day]

    def check_catalogue(self) -> str:
        from ..plan import day_mission, missions

        errors = []
        for day in self._probe_days():
            mission = day_mission(self.cfg, day) or missions(self.cfg)[-1]
            result = self._listing(day)
            count = len(result.manifest)
            if count == 0:
                errors.append(f"{day}: 0 granules")
                continue
            if mission.key == "amsr2" and count not in PLAUSIBLE_DAILY_GRANULES:
                raise CheckFailed(
                    f"{day}: {count} granules, where the orbit gives 29-30 a day",
                    "check the dataset setting and that the catalogue is G-Portal's",
                )
            bad = [g for g in result.manifest["granule_id"] if not str(g).startswith(mission.name_prefix)]
            if bad:
                raise CheckFailed(
                    f"{day}: record {bad[0]} is not a {mission.sensor} granule", "check the dataset setting"
                )
            self.manifest = result.manifest
            row = result.manifest.iloc[-1]
            self.remote_path, self.size_bytes = str(row["remote_path"]), int(row["size_bytes"])
            return f"{day}: {count} granules (matched {result.matched}), e.g. {row['granule_id']}"
        raise CheckFailed(
            "; ".join(errors) + " listed", "choose a day with data (--probe-day) or check the dataset setting"
        )

    def check_layout(self) -> str:
        from ..gportal.remote_layout import LayoutNotFound, find_remote_layout

        try:
            layout = find_remote_layout(self.session, self.remote_path, self.cfg.get("remote_path_template"))
        except LayoutNotFound as exc:
            raise CheckFailed(str(exc), "set remote_path_template in the configuration") from exc
        self.remote_path = layout.path
        self.layout = layout
        return layout.summary()

    def _sampled_days(self) -> list[date]:
        """Up to :data:`SAMPLED_DAYS` days spread evenly over the run's days until yesterday (files of today may
        not be processed yet), first and last included."""
        from ..plan import RunPlan

        yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
        days = [day for day in RunPlan.from_config(self.cfg).days if day <= yesterday] or self._probe_days()
        if len(days) <= SAMPLED_DAYS:
            return days
        step = (len(days) - 1) / (SAMPLED_DAYS - 1)
        return sorted({days[round(i * step)] for i in range(SAMPLED_DAYS)})

    def check_granules_present(self) -> str:
        """One granule of each sampled day (the middle of its listing) looked for where the run will look."""
        from ..gportal.remote_layout import apply_template
        from ..gportal.sftp import TransferError

        present: list[str] = []
        absent: list[str] = []
        for day in self._sampled_days():
            manifest = self._listing(day).manifest
            if len(manifest) == 0:
                continue
            row = manifest.iloc[len(manifest) // 2]
            path = apply_template(str(row["remote_path"]), self.layout.template)
            try:
                (present if self.session.exists(path) else absent).append(path)
            except TransferError as exc:
                raise CheckFailed(str(exc), "retry later; if it persists, G-Portal may be overloaded") from exc
        sampled = len(present) + len(absent)
        if sampled and not present:
            raise CheckFailed(
                f"none of {sampled} catalogued granules sampled over the run's days is on the server "
                f"(e.g. {absent[-1]})",
                f"a run would archive nothing: {ABSENT_MEANINGS}",
            )
        if absent:
            raise CheckWarned(
                f"{len(absent)} of {sampled} catalogued granules sampled over the run's days are not on the server "
                f"(e.g. {absent[0]}); a run lists such granules as absent and looks for them again later",
                f"if more than a few are missing: {ABSENT_MEANINGS}",
            )
        if not sampled:
            return "the sampled days list no granules"
        return f"{sampled} of {sampled} catalogued granules sampled over the run's days are there"

    def check_download(self) -> str:
        from ..formats import l1b, swath
        from ..gportal.sftp import GranuleAbsent, TransferError

        try:
            stat_size = self.session.remote_size(self.remote_path)
            if stat_size != self.size_bytes:
                raise CheckFailed(
                    f"SFTP stat says {stat_size} bytes, the catalogue {self.size_bytes}",
                    "the service serves another file than it catalogues; report it to G-Portal",
                )
            with tempfile.TemporaryDirectory(prefix="amsr2flow-doctor-") as scratch:
                target = Path(scratch) / Path(self.remote_path).name
                download = self.session.download(self.remote_path, target, stat_size)
                try:
                    self.extraction = swath.extract_granule(
                        target, l1b.DEFAULT_CHANNELS, True, sha256=download.sha256, source_size=download.size_bytes
                    )
                except swath.SwathError as exc:
                    raise CheckFailed(str(exc), "the file is not the L1B layout extraction relies on") from exc
        except GranuleAbsent as exc:
            raise CheckFailed(
                str(exc),
                "order it on the G-Portal web site (granules older than about 2.5 years may need that), or check "
                "the layout (remote_path_template); or try another day with --probe-day",
            ) from exc
        except TransferError as exc:
            raise CheckFailed(str(exc), "retry later; if it persists, G-Portal may be overloaded") from exc
        meta = self.extraction.swath.metadata
        return (
            f"{Path(self.remote_path).name}: {download.size_bytes} bytes in {download.seconds:.1f} s "
            f"(= catalogue = stat; {self._link_text()}), {meta.shape[0]} scans, {meta.scan_start_utc} to "
            f"{meta.scan_end_utc}, extracts"
        )

    def _link_text(self) -> str:
        """The session's link as a run's would use it: the configured window and packet, the read size as
        configured and as the server allows it."""
        link, session = self.connection.link, self.session
        asked = f"reads of {session.request_bytes >> 10} KiB"
        if session.request_bytes != link.request_bytes:
            limit = (
                f"the server answers {session.server_read_limit}" if session.server_read_limit else "it answered less"
            )
            asked += f" (transfer.sftp_request_kib {link.request_bytes >> 10}; {limit})"
        return f"{asked}, window {link.window_bytes >> 20} MiB, packets {link.max_packet_bytes >> 10} KiB"

    def check_facts(self) -> str:
        from ..formats import facts
        from ..gportal.catalogue import iso_ms

        row = self.manifest.iloc[-1].to_dict()  # the granule check_catalogue chose and check_download fetched
        record = facts.CatalogueRecord.from_row(
            {**row, "begin_utc": iso_ms(row["begin_utc"]), "end_utc": iso_ms(row["end_utc"])}
        )
        meta = self.extraction.swath.metadata
        found = self.extraction.disagreements(record, self.remote_path, self.cfg["catalogue"]["time_tolerance_s"])
        if found:
            times = any(d.fact in (facts.BEGIN_TIME, facts.END_TIME) for d in found)
            raise CheckFailed(
                "; ".join(d.message for d in found),
                "a run records such a granule and exits 3. If G-Portal's times follow another convention than "
                "assumed (the catalogue's begin = the first non-overlap scan), set catalogue.time_tolerance_s; "
                "otherwise report the granule to G-Portal"
                if times
                else "a run records such a granule and exits 3; report the granule to G-Portal",
            )
        file_facts = self.extraction.file_facts
        seen = ["catalogue", "file name", "scan times"]
        seen += ["file attributes"] if file_facts.orbit_direction or file_facts.observation_start_utc else []
        seen += ["latitudes"] if file_facts.latitude_direction else []
        return (
            f"{meta.granule_id}: orbit direction {meta.orbit_type}, begin {meta.scan_start_utc}, end "
            f"{meta.scan_end_utc}, {meta.source_size} bytes: {', '.join(seen)} agree"
        )


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - `amsr2flow doctor` is the entry point
    parser = argparse.ArgumentParser(prog="amsr2flow doctor")
    configure_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
