"""The failure reasons are one list (amsr2flow.run.reasons): every reason the client, the day jobs and the
reports write has its text and remedy there, and the configuration accepts exactly the reasons it may."""

from __future__ import annotations

from pathlib import Path

import yaml

from amsr2flow.gportal import sftp
from amsr2flow.run.reasons import ACCEPTABLE, RETRY_NEXT_RUN, Reason, remedy_of, text_of
from amsr2flow.stages import granule

REPO = Path(__file__).resolve().parents[1]


def _subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


def test_every_transfer_error_kind_is_a_reason() -> None:
    """The client names its errors' kinds as plain strings (it imports nothing of the run): each concrete one
    must be a reason with a text, or the report would show a bare code."""
    abstract = {sftp.TransferError, sftp.TransientTransferError, sftp.FatalTransferError}
    kinds = {c.kind for c in _subclasses(sftp.TransferError) if c not in abstract}
    assert {granule.CorruptGranule.kind, granule.SporadicAuthRefusal.kind} <= kinds
    assert kinds <= {r.value for r in Reason}, kinds - {r.value for r in Reason}


def test_every_reason_reads_as_text_and_says_what_to_do() -> None:
    for reason in Reason:
        assert reason.text and reason.text != reason.value
        assert reason.remedy
        assert text_of(reason.value) == reason.text and str(reason) == reason.value
    assert text_of("something new") == "something new" and remedy_of("something new") == RETRY_NEXT_RUN


def test_accept_missing_accepts_exactly_the_acceptable_reasons() -> None:
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text(encoding="utf-8"))
    assert schema["properties"]["accept_missing"]["items"]["enum"] == [r.value for r in ACCEPTABLE]
