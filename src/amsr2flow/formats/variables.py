"""Extra per-pixel variables a swath can carry besides brightness temperatures (the configuration's
``variables``): angles, land fraction and quality flags, each kept raw, as the granule stores it.

One record per variable (``EXTRA_VARIABLES``): the L1B dataset it comes from, how it is stored (dtype, shape of
one scan row), its scale and fill, and its CF attributes. Kept raw means the file's integers, not converted
values: the angles stay int16 hundredths of a degree (a swath of one angle costs 1 MB, not 2 or 4), the land
fractions uint8 percent. Two datasets are rearranged without changing any value, so that every stored array has
scans as its first axis, like the temperatures:

- ``Land_Ocean Flag 6 to 36`` (4, N, 243) and ``... 89`` (2, N, 486) have their layer axis moved second:
  ``(N, layer, pixel)``;
- ``Pixel Data Quality 6 to 36`` (N, 486) holds one 16-bit RFI flag word per low-frequency pixel as two bytes,
  least significant first; it is stored as that word, ``uint16`` (N, 243), the same bytes.

Which facts are confirmed by code written against real files: the names, shapes, dtypes, the 0.01 scale of the
Earth angles, the int16 fill -32767 and the land percentages with 255 fill are; the Sun angles' dtype is
inferred and the meaning of the RFI flag bits is not documented in any code we know (docs/formats.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import l1b

LAND_LAYERS = ("6.9", "10.7", "23.8", "36.5")  # GHz footprints of the layers of `Land_Ocean Flag 6 to 36`
LAND_LAYERS_89 = ("89.0A", "89.0B")


@dataclass(frozen=True)
class ExtraVariable:
    """One optional per-pixel variable: where it comes from in the granule and how a swath stores it."""

    name: str  # the configuration's and the archive's name
    dataset: str  # the L1B dataset
    file_dtype: str  # as in the granule (either byte order)
    file_shape: tuple[int | str, ...]  # "N" is the row count
    dtype: str  # as stored (little-endian)
    row_shape: tuple[int, ...]  # shape of one scan row as stored
    fill: int | None  # raw value meaning "no value" (also used for padding in exports)
    scale_factor: float | None = None  # physical = raw * scale_factor
    units: str = "1"
    long_name: str = ""
    standard_name: str | None = None
    layers: tuple[str, ...] = ()  # names of the layer axis (land fractions)
    comment: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def layer_dim(self) -> str | None:
        return None if not self.layers else ("land_layer_89" if len(self.layers) == 2 else "land_layer")


def _angle(name: str, dataset: str, long_name: str, standard_name: str, comment: str = "") -> ExtraVariable:
    return ExtraVariable(
        name=name,
        dataset=dataset,
        file_dtype="int16",
        file_shape=("N", l1b.LOW_FREQ_PIXELS),
        dtype="<i2",
        row_shape=(l1b.LOW_FREQ_PIXELS,),
        fill=l1b.INT16_FILL,
        scale_factor=0.01,
        units="degree",
        long_name=long_name,
        standard_name=standard_name,
        comment=comment,
    )


EXTRA_VARIABLES: dict[str, ExtraVariable] = {
    v.name: v
    for v in (
        _angle(
            "earth_incidence",
            "Earth Incidence",
            "Earth incidence angle of the line of sight",
            "sensor_zenith_angle",
        ),
        _angle(
            "earth_azimuth",
            "Earth Azimuth",
            "azimuth of the line of sight seen from the footprint, clockwise from north",
            "sensor_azimuth_angle",
            "stored in (-180, 180]",
        ),
        _angle("sun_elevation", "Sun Elevation", "elevation of the Sun at the footprint", "solar_elevation_angle"),
        _angle(
            "sun_azimuth",
            "Sun Azimuth",
            "azimuth of the Sun at the footprint, clockwise from north",
            "solar_azimuth_angle",
            "stored in (-180, 180]",
        ),
        ExtraVariable(
            name="land_fraction",
            dataset="Land_Ocean Flag 6 to 36",
            file_dtype="uint8",
            file_shape=(4, "N", l1b.LOW_FREQ_PIXELS),
            dtype="u1",
            row_shape=(4, l1b.LOW_FREQ_PIXELS),
            fill=l1b.UINT8_FILL,
            units="percent",
            long_name="land fraction of the footprint, per frequency footprint",
            standard_name="land_area_fraction",
            layers=LAND_LAYERS,
            comment="layers are the 6.9, 10.7, 23.8 and 36.5 GHz footprints (the granule's layer order)",
        ),
        ExtraVariable(
            name="land_fraction_89",
            dataset="Land_Ocean Flag 89",
            file_dtype="uint8",
            file_shape=(2, "N", l1b.HIGH_FREQ_PIXELS),
            dtype="u1",
            row_shape=(2, l1b.HIGH_FREQ_PIXELS),
            fill=l1b.UINT8_FILL,
            units="percent",
            long_name="land fraction of the 89 GHz footprints",
            standard_name="land_area_fraction",
            layers=LAND_LAYERS_89,
        ),
        ExtraVariable(
            name="pixel_quality",
            dataset="Pixel Data Quality 6 to 36",
            file_dtype="uint8",
            file_shape=("N", l1b.HIGH_FREQ_PIXELS),
            dtype="<u2",
            row_shape=(l1b.LOW_FREQ_PIXELS,),
            fill=None,
            long_name="pixel data quality (RFI flag word) of the 6.9-36.5 GHz channels",
            comment="the granule's two bytes per pixel read as one little-endian 16-bit word; the meaning of "
            "each bit is JAXA's (not confirmed here); 0 means no flag is raised",
        ),
        ExtraVariable(
            name="pixel_quality_89",
            dataset="Pixel Data Quality 89",
            file_dtype="uint8",
            file_shape=("N", l1b.HIGH_FREQ_PIXELS),
            dtype="u1",
            row_shape=(l1b.HIGH_FREQ_PIXELS,),
            fill=None,
            long_name="pixel data quality of the 89 GHz channels",
            comment="the granule's byte per 89 GHz pixel; 0 means no flag is raised",
        ),
        ExtraVariable(
            name="scan_quality",
            dataset="Scan Data Quality",
            file_dtype="int8",
            file_shape=("N", 512),
            dtype="i1",
            row_shape=(512,),
            fill=None,
            long_name="scan data quality bytes",
            comment="the granule's 512 bytes per scan, unchanged",
        ),
    )
}


class VariableError(ValueError):
    """An unknown variable name, or a granule whose dataset does not match the variable's format."""


def check_names(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The names in storage order (the registry's, whatever order the configuration lists them in)."""
    unknown = [n for n in names if n not in EXTRA_VARIABLES]
    if unknown:
        raise VariableError(f"unknown variable(s) {unknown}; known: {', '.join(EXTRA_VARIABLES)}")
    wanted = set(names)
    return tuple(n for n in EXTRA_VARIABLES if n in wanted)


def parse_list(text: str) -> tuple[str, ...]:
    """An index's comma-separated ``variables`` column as names ("" is none)."""
    return tuple(n for n in text.split(",") if n)


def stored_dtype(name: str) -> np.dtype:
    return np.dtype(EXTRA_VARIABLES[name].dtype)


def from_file_array(variable: ExtraVariable, values: np.ndarray) -> np.ndarray:
    """The granule's dataset as the swath stores it: scans first, the stored dtype, the same values."""
    if variable.layers:
        values = np.moveaxis(values, 0, 1)
    values = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("="))
    if variable.name == "pixel_quality":
        # byte pairs, least significant first: one uint16 word per pixel, whatever the machine's byte order
        pairs = values.reshape(values.shape[0], -1, 2).astype(np.uint16)
        return np.ascontiguousarray(pairs[..., 0] | (pairs[..., 1] << 8), dtype="<u2")
    return values.astype(np.dtype(variable.dtype), copy=False)


def expected_file_shape(variable: ExtraVariable, rows: int) -> tuple[int, ...]:
    return tuple(rows if d == "N" else int(d) for d in variable.file_shape)


def size_per_scan(names: tuple[str, ...]) -> int:
    """Bytes one scan row of these variables takes, uncompressed."""
    return sum(int(np.prod(EXTRA_VARIABLES[n].row_shape)) * stored_dtype(n).itemsize for n in names)
