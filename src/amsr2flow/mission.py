"""Mission facts the product needs: which G-Portal dataset, which sensor, how its files are named and where.

One record per collectable dataset (the configuration's ``dataset`` key). The AMSR-E entries are not
confirmed by code written against real files (docs/formats.md says what is confirmed); they are kept in this
one place so that a user with real files can correct them. The local G-Portal builds its synthetic granules from
these same records (``amsr2flow.emulator.orbit`` adds the orbit model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from .formats import l1b


@dataclass(frozen=True)
class Mission:
    """A sensor whose L1B granules G-Portal serves in the AMSR2 L1B layout."""

    key: str  # short name, e.g. "amsr2"
    sensor: str
    platform: str
    name_prefix: str  # first field of the granule file name
    product_kind: str  # e.g. "L1SGBTBR"
    product_version: str  # the file name's version digits, e.g. "2220220"
    dataset_id: str  # G-Portal's datasetId
    remote_product_dir: str  # below standard/ (legacy tree) or /product/Standard/ (current tree)
    first_day: date
    last_day: date | None
    archive_prefix: str  # first field of archive and part names: AMSR2_temp_only_..., AMSRE_temp_only_...
    channels: tuple[str, ...] = field(default=tuple(l1b.CHANNEL_DATASETS))
    #: channels whose granules hold only missing values from a day on (an instrument failure)
    channels_lost: tuple[tuple[str, date], ...] = ()

    def lost_channels_on(self, day: date) -> tuple[str, ...]:
        return tuple(channel for channel, since in self.channels_lost if day >= since)


AMSR2 = Mission(
    key="amsr2",
    sensor="AMSR2",
    platform="GCOM-W1",
    name_prefix="GW1AM2",
    product_kind="L1SGBTBR",
    product_version="2220220",
    dataset_id="11001001",
    remote_product_dir="GCOM-W/GCOM-W.AMSR2/L1B/2",
    first_day=date(2012, 7, 3),
    last_day=None,
    archive_prefix="AMSR2",
)

# AMSR-E in AMSR2 format: name prefix, version digits and remote folder are not confirmed ([U]).
AMSRE = Mission(
    key="amsre",
    sensor="AMSR-E",
    platform="Aqua",
    name_prefix="A2ES1M",
    product_kind="L1SGBTBR",
    product_version="4000000",
    dataset_id="25001000",
    remote_product_dir="Aqua/Aqua.AMSR-E/L1B/4",
    first_day=date(2002, 6, 1),
    last_day=date(2011, 10, 4),
    archive_prefix="AMSRE",
    channels=tuple(c for c in l1b.CHANNEL_DATASETS if c not in l1b.AMSRE_MISSING_CHANNELS),
    # The 89 GHz A horn failed in November 2004 (the reference gives the month; the day is not confirmed [U]):
    # from then on its channels are missing values in the granules (the local G-Portal writes them so).
    channels_lost=(("89.0AH", date(2004, 11, 4)), ("89.0AV", date(2004, 11, 4))),
)

MISSIONS: dict[str, Mission] = {AMSR2.key: AMSR2, AMSRE.key: AMSRE}
#: The configuration's ``dataset`` values.
DATASETS: dict[str, Mission] = {"amsr2-l1b": AMSR2, "amsre-l1b": AMSRE}
