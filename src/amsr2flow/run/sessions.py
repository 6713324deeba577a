"""The run's cap on G-Portal sessions, shared by its day jobs.

``--resources gportal=N`` caps the SFTP sessions open at once; each day job asks for its share of it and opens
that many sessions (``stages.granule.collect_day(..., sessions=S)``). With at least N day jobs to run the share
is 1, as it always was: N jobs at once, one session each. With fewer, a job gets ``N // pending`` sessions, so
that following the mission day by day (one day pending) still uses the whole cap. Snakemake's main process
counts every running job's share against N, so the cap holds whatever the count foresaw.

The remainder (``N % pending``) is not handed out: with days of equal size the run ends with its slowest day,
so a day given one more session ends earlier and leaves its sessions idle while the others finish; the run
takes as long, with more logins.

Cluster jobs parse the Snakefile again, later and elsewhere, where neither the cap (``--resources`` is not
passed on) nor the count of pending days is what the main process saw. So the main process puts both in its
environment (:meth:`SessionShare.environ`), which its jobs inherit (the SLURM executor submits with
``--export=ALL``), and a job's own parse takes them from there (:meth:`SessionShare.inherited`); without them a
job keeps to one session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..gportal.catalogue import MANIFEST_COLUMNS

CAP_VARIABLE = "AMSR2FLOW_GPORTAL_CAP"
SHARE_VARIABLE = "AMSR2FLOW_DAY_JOB_SESSIONS"
#: The size of a day manifest that lists no granule: its header alone (``catalogue.manifest_to_csv_bytes``).
EMPTY_MANIFEST_BYTES = len(",".join(MANIFEST_COLUMNS)) + 1


def day_job_share(cap: int, pending: int) -> int:
    """Sessions per day job: ``cap // pending``, at least 1 (Snakemake queues the jobs beyond the cap), so never
    more than ``cap``. No pending day foreseen: 1 (jobs that run all the same redo a few granules each, after a
    recheck or a changed manifest, and are better served side by side)."""
    return max(1, cap // pending) if pending > 0 else 1


@dataclass(frozen=True)
class SessionShare:
    """The run's cap on concurrent G-Portal sessions and each day job's share of it."""

    cap: int
    per_day_job: int

    @classmethod
    def planned(cls, cap: int, pending: int) -> SessionShare:
        """The main process's share: the cap among the ``pending`` day jobs it foresees."""
        return cls(cap, day_job_share(cap, pending))

    def environ(self) -> dict[str, str]:
        """What the main process passes on to its jobs' own parses."""
        return {CAP_VARIABLE: str(self.cap), SHARE_VARIABLE: str(self.per_day_job)}

    @classmethod
    def inherited(cls, environ: Mapping[str, str], cap: int) -> SessionShare:
        """A job's own parse: the main process's cap and share, or one session under ``cap`` without them."""
        try:
            inherited = cls(int(environ[CAP_VARIABLE]), int(environ[SHARE_VARIABLE]))
        except (KeyError, ValueError):
            return cls(cap, 1)
        return inherited if 1 <= inherited.per_day_job <= inherited.cap else cls(cap, 1)
