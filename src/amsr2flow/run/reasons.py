"""Why a catalogued granule is not archived (or is archived with a caveat): one list, with what each reason
means and what the user can do about it.

The values are the ``reason_class`` strings of the ledger, the reports and the per-granule table (``Reason`` is
a ``str``: an entry written before this list compares equal). The client's transfer errors name theirs as a
``kind`` (``gportal.sftp``, which imports nothing of the run); a test holds every kind to this list.
"""

from __future__ import annotations

from enum import Enum

RETRY_NEXT_RUN = "rerun the same command"


class Reason(str, Enum):
    ABSENT = "absent"
    SUSPECT_ABSENT = "suspect_absent"
    INVALID = "invalid"
    TRANSIENT = "transient"
    NETWORK = "network"
    STALL = "stall"
    TRUNCATED = "truncated"
    CORRUPT = "corrupt"
    AUTH = "auth"
    KEY = "key"
    HOST_KEY = "host_key"
    DISK_FULL = "disk_full"
    STOPPED = "stopped"
    UNACCOUNTED = "unaccounted"
    NOT_ATTEMPTED = "not_attempted"
    JOB_FAILED = "job_failed"
    REAPPEARED = "reappeared"
    DISAGREEMENT = "disagreement"
    OUTSIDE_REGION = "outside_region"

    def __str__(self) -> str:
        return self.value

    @property
    def text(self) -> str:
        return TEXTS[self]

    @property
    def remedy(self) -> str:
        return REMEDIES.get(self, RETRY_NEXT_RUN)


TEXTS: dict[Reason, str] = {
    Reason.ABSENT: "in the catalogue but not on the SFTP server",
    Reason.SUSPECT_ABSENT: "not on the SFTP server, like the granules before it: the run stopped (paths look wrong)",
    Reason.INVALID: "downloaded file unreadable after every attempt",
    Reason.TRANSIENT: "network or server failures outlived the attempts (retried next run)",
    Reason.NETWORK: "G-Portal could not be reached from this machine (retried next run)",
    Reason.STALL: "transfers stalled on every attempt (retried next run)",
    Reason.TRUNCATED: "transfers ended early on every attempt (retried next run)",
    Reason.CORRUPT: "downloads were corrupt on every attempt (retried next run)",
    Reason.AUTH: "logins refused on every attempt although the preflight login worked (retried next run)",
    Reason.KEY: "the private key could not be used",
    Reason.HOST_KEY: "host key did not match the pinned fingerprint",
    Reason.DISK_FULL: "the disk filled up",
    Reason.STOPPED: "not tried: the run was stopped (fatal error or G-Portal down); retried next run",
    Reason.UNACCOUNTED: "neither archived nor in the failure ledger (a silent loss: please report it)",
    Reason.NOT_ATTEMPTED: "not attempted: the run stopped before its turn (fetched by the next run)",
    Reason.JOB_FAILED: "its job ended without recording a reason; its log says why (retried next run)",
    Reason.REAPPEARED: "back on the SFTP server after being absent; fetched by this run or the next",
    Reason.DISAGREEMENT: (
        "archived, but the catalogue, its file name and its file disagree on a fact (both values named)"
    ),
    Reason.OUTSIDE_REGION: "its catalogue footprint touches the region but none of its scans does (not missing)",
}

#: What the user can do about each reason (the report's "what to do" column); the others: rerun.
REMEDIES: dict[Reason, str] = {
    Reason.ABSENT: (
        "looked for again by later runs (catalogue.recheck_absent_after_hours); if G-Portal wants older files "
        "ordered first (the 2.5-year rule), order them on the G-Portal web site, then rerun"
    ),
    Reason.SUSPECT_ABSENT: (
        "run `amsr2flow doctor`, check remote_path_template or order the files on G-Portal, then rerun"
    ),
    Reason.INVALID: "rerun later; if it stays unreadable, report the granule to G-Portal",
    Reason.NETWORK: "run where the internet is reachable (on a cluster: transfer_jobs: local), then rerun",
    Reason.KEY: "fix the key or its passphrase variable (`amsr2flow doctor` checks it), then rerun",
    Reason.HOST_KEY: (
        "read the server's keys (ssh-keyscan -p PORT HOST | ssh-keygen -lf -), check the new one with JAXA, "
        "add it to host_keys, then rerun"
    ),
    Reason.DISK_FULL: "free space on the output or scratch disk, then rerun",
    Reason.JOB_FAILED: "read its day's job log (logs/granules/YYYY/YYYY-MM-DD.log), then rerun",
    Reason.UNACCOUNTED: "rerun; please report it",
    Reason.DISAGREEMENT: "check the granule on G-Portal and report it; the archive keeps what the file holds",
    Reason.OUTSIDE_REGION: "nothing: the granule holds no data in the region",
}

#: Reasons a run may accept (``accept_missing``) and still exit 0: G-Portal does not have the granule as catalogued.
ACCEPTABLE = (Reason.ABSENT, Reason.INVALID)


def text_of(code: str) -> str:
    """What a ``reason_class`` means (the code itself for one this list does not know)."""
    try:
        return Reason(code).text
    except ValueError:
        return code


def remedy_of(code: str) -> str:
    try:
        return Reason(code).remedy
    except ValueError:
        return RETRY_NEXT_RUN
