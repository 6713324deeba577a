"""Archives as xarray Datasets (CF conventions), lazily: ``xarray.open_dataset(path, engine="amsr2flow")``.

Layout: one Dataset per archive with dimensions ``(swath, scan, pixel)``, swaths padded to the longest swath's
scan count (``n_scans`` says how many rows of each are real). Why this layout, over one group per swath or one
long ragged ``scan`` dimension:

- an ML batch loader wants fixed-shape samples: ``ds.tb_36_5H[i]`` is one swath, one chunk (chunks are one
  swath each), ready for ``crop_or_pad``-like cropping without any index arithmetic;
- a time-series query selects swaths by their time coordinate (``ds.sel(swath=...)`` on the monotonic
  ``time``, the scan start) and then rows, reading only those chunks; one group per swath would need a loop
  over 10,000 groups, and a ragged dimension an offset table for every question;
- padding costs almost nothing on disk: padded rows are the fill value and compress to nothing.

Brightness temperatures stay raw ``uint16`` on disk with CF ``scale_factor`` and ``_FillValue = 0`` (0 is the
invalid raw value of the archives), so an export does not blow up to float64; xarray decodes them to Kelvin on
reading. That needs one scale factor per channel over the archive, which AMSR2 L1B has (0.01 K); an archive
whose swaths differ is refused with a message rather than silently rescaled. 89 GHz channels have their own
``pixel_89`` dimension (486 pixels); positions, as the archive stores them, are on ``pixel`` (243).

``scan_time`` (swath, scan) is the UTC time of every scan (from the granule's TAI93 ``Scan Time``, leap
seconds applied), NaT in padding rows and for swaths archived before scan times were kept; ``time`` and
``time_end`` are each swath's first and last non-overlap scans.

The xarray engine itself is ``formats/xarray_backend.py`` (it opens the archive; this module only needs an
open one, so that ``Archive.to_xarray`` and the engine share it without an import cycle).

Reading is lazy: nothing is read until values are asked for, then only the swaths asked for. With dask
installed, ``chunks={}`` (or ``{"swath": 1}``) gives dask arrays of one swath per chunk.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import JAXA_ACKNOWLEDGEMENT, __version__, atomic
from . import l1b, variables
from .swath import LATITUDE, LONGITUDE, SCAN_TIME_UTC, TEMPERATURE, index_times

ENGINE = "amsr2flow"
CF_CONVENTIONS = "CF-1.10"
TB_STANDARD_NAME = "toa_brightness_temperature"
RAW_FILL = 0
POSITION_FILL = np.float32(np.nan)  # padding rows; the file's own fills (<= -9991) are kept as values


class DatasetError(ValueError):
    """An archive that cannot be represented as the documented Dataset; the message says why."""


def variable_name(channel: str) -> str:
    """``tb_36_5H`` for channel ``36.5H`` (names that work as Python attributes and in every format)."""
    return "tb_" + channel.replace(".", "_")


def pixel_dim(n_pixels: int) -> str:
    return "pixel" if n_pixels == l1b.LOW_FREQ_PIXELS else "pixel_89"


def _frequency_polarisation(channel: str) -> tuple[float, str]:
    digits = "".join(c for c in channel if c.isdigit() or c == ".")
    return float(digits), channel[-1]


def _lazy(array: Any) -> Any:
    from xarray.core import indexing

    return indexing.LazilyIndexedArray(array)


try:  # xarray is needed only to open archives as Datasets
    from xarray.backends import BackendArray
except ImportError:  # pragma: no cover - without xarray nothing here is used
    BackendArray = object  # type: ignore[assignment,misc]


class SwathStack(BackendArray):  # type: ignore[misc,valid-type]
    """One array of every swath of an archive, stacked as ``(swath, scan, pixel)`` and padded: an xarray
    ``BackendArray`` read swath by swath on indexing (basic indexing: integers and slices)."""

    def __init__(
        self,
        archive: Any,
        member: str,
        row_shape: tuple[int, ...],
        dtype: np.dtype,
        fill: Any,
        present: np.ndarray | None = None,
    ) -> None:
        self.archive = archive
        self.member = member
        self.fill = fill
        self.dtype = np.dtype(dtype)
        rows = int(archive.table["n_scans"].max(initial=0))
        self.shape = (len(archive), rows, *row_shape)  # row_shape () for one value per scan (scan times)
        # swaths without this array (archived before it was kept, or with another variable set) read as fill
        self.present = np.ones(len(archive), dtype=bool) if present is None else present

    def __getitem__(self, key: Any) -> np.ndarray:
        from xarray.core import indexing

        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.BASIC, self._read)

    def _read(self, key: tuple) -> np.ndarray:
        swath_key, rest = key[0], key[1:]
        positions = range(self.shape[0])[swath_key] if isinstance(swath_key, slice) else [swath_key]
        out = np.full((len(positions), *self.shape[1:]), self.fill, dtype=self.dtype)
        for k, i in enumerate(positions):
            if not self.present[i]:  # a swath archived before scan times were kept
                continue
            values = self.archive.read_array(i, self.member)
            out[(k, *(slice(0, n) for n in values.shape))] = values
        out = out[(slice(None), *rest)]
        return out[0] if not isinstance(swath_key, slice) else out


def _scale_factor(table: np.ndarray, column: str, channel: str) -> float:
    factors = np.unique(table[column])
    if len(factors) > 1:
        raise DatasetError(
            f"channel {channel}: swaths have different scale factors {factors.tolist()}; CF allows one per "
            "variable. Split the archive by scale factor (Archive.select) and export each part"
        )
    return float(factors[0]) if len(factors) else 0.01


def archive_dataset(archive: Any, **decode: Any) -> Any:
    """The Dataset of an open :class:`~amsr2flow.formats.archive.Archive` (lazy; the archive must stay open).

    ``decode`` goes to ``xarray.decode_cf`` (e.g. ``mask_and_scale=False`` for the raw uint16 values)."""
    import xarray as xr

    table = archive.table
    channels = archive.channels
    data_vars: dict[str, Any] = {}
    for n, channel in enumerate(channels):
        n_pixels = l1b.channel_pixels(channel)
        frequency, polarisation = _frequency_polarisation(channel)
        column = "scale_factor" if n == 0 else f"scale_factor_{channel}"
        stack = SwathStack(archive, TEMPERATURE if n == 0 else channel, (n_pixels,), np.uint16, RAW_FILL)
        data_vars[variable_name(channel)] = xr.Variable(
            ("swath", "scan", pixel_dim(n_pixels)),
            _lazy(stack),
            attrs={
                "standard_name": TB_STANDARD_NAME,
                "long_name": f"brightness temperature {channel} GHz",
                "units": "K",
                "scale_factor": np.float32(_scale_factor(table, column, channel)),  # decodes to float32
                "_FillValue": np.uint16(RAW_FILL),
                "channel": channel,
                "frequency_ghz": frequency,
                "polarization": {"H": "horizontal", "V": "vertical"}[polarisation],
                "coordinates": "latitude longitude" if archive.geolocation else "",
            },
        )
    coords: dict[str, Any] = {
        "time": ("swath", index_times(table["scan_start_utc"]), {"standard_name": "time", "long_name": "first scan"}),
        "time_end": ("swath", index_times(table["scan_end_utc"]), {"long_name": "last scan"}),
        "granule_id": ("swath", table["granule_id"].astype(str), {"long_name": "JAXA granule id"}),
        "orbit_direction": (
            "swath",
            table["orbit_type"].astype(str),
            {"long_name": "half-orbit", "flag_meanings": "A: ascending, D: descending, U: unknown"},
        ),
        "n_scans": ("swath", table["n_scans"].astype(np.int32), {"long_name": "rows of the swath that are real"}),
        "sensor": (
            "swath",
            np.array([l1b.sensor_of(str(g)) for g in table["granule_id"]], dtype="<U7"),
            {"long_name": "sensor of the swath (AMSR2 on GCOM-W, AMSR-E on Aqua), from the granule id"},
        ),
    }
    has_times = table["has_scan_times"] if "has_scan_times" in (table.dtype.names or ()) else np.zeros(len(table), bool)
    if has_times.any():
        coords["scan_time"] = xr.Variable(
            ("swath", "scan"),
            _lazy(SwathStack(archive, SCAN_TIME_UTC, (), np.float64, np.nan, has_times)),
            attrs={
                "standard_name": "time",
                "long_name": "time of the scan (UTC), from the granule's Scan Time (TAI93, leap seconds applied)",
                "units": "seconds since 1970-01-01 00:00:00",
                # not "standard": xarray fails to encode an all-NaT chunk (a swath without scan times) with it
                "calendar": "proleptic_gregorian",
            },
        )
    if archive.geolocation:
        for name, member, standard, units, bounds in (
            ("latitude", LATITUDE, "latitude", "degrees_north", (-90.0, 90.0)),
            ("longitude", LONGITUDE, "longitude", "degrees_east", (-180.0, 180.0)),
        ):
            stack = SwathStack(archive, member, (l1b.LOW_FREQ_PIXELS,), np.float32, POSITION_FILL)
            coords[name] = xr.Variable(
                ("swath", "scan", "pixel"),
                _lazy(stack),
                attrs={
                    "standard_name": standard,
                    "units": units,
                    "valid_min": np.float32(bounds[0]),
                    "valid_max": np.float32(bounds[1]),
                    "comment": "the granule's positions (89 GHz A horn, every second column); values at or "
                    "below -9991 are the file's fills, padding rows are NaN",
                },
            )
    data_vars.update(_extra_variables(archive))
    if any(v in data_vars for v in variables.EXTRA_VARIABLES):
        coords["variables"] = (
            "swath",
            _variables_column(table).astype(str),
            {"long_name": "extra variables the swath was extracted with (comma-separated)"},
        )
    names = table.dtype.names or ()
    if "region" in names and table["region"].astype(bool).any():  # swaths cropped to a region
        coords["first_scan"] = (
            "swath",
            table["first_scan"].astype(np.int32),
            {"long_name": "row of the source granule that is the swath's first row (cropped to a region)"},
        )
        coords["region"] = ("swath", table["region"].astype(str), {"long_name": "region the swath was cropped to"})
    for name, layers in (("land_layer", variables.LAND_LAYERS), ("land_layer_89", variables.LAND_LAYERS_89)):
        if any(name in v.dims for v in data_vars.values()):
            coords[name] = (name, np.array(layers), {"long_name": "frequency footprint of the layer (GHz)"})
    dataset = xr.Dataset(data_vars, coords=coords)
    dataset.attrs = {
        "Conventions": CF_CONVENTIONS,
        "title": "AMSR-2 L1B brightness temperatures (swaths)",
        "source": "JAXA G-Portal L1B granules, collected by amsr2flow",
        "institution": "JAXA (data); amsr2flow (collection)",
        "acknowledgement": JAXA_ACKNOWLEDGEMENT,
        "period": archive.period,
        "provenance": json.dumps(archive.provenance, sort_keys=True),
        "history": f"exported from {archive.path.name} by amsr2flow {__version__}",
    }
    return xr.decode_cf(dataset, **decode)


def _variables_column(table: np.ndarray) -> np.ndarray:
    return table["variables"] if "variables" in (table.dtype.names or ()) else np.full(len(table), "")


def export_fill(variable: variables.ExtraVariable) -> Any:
    """The raw value of padding rows and of swaths without the variable: its fill, else the dtype's extreme
    (flag words have no fill of their own; 0 means "no flag", which padding must not claim)."""
    dtype = np.dtype(variable.dtype)
    return dtype.type(variable.fill if variable.fill is not None else _integer_extreme(dtype))


def _integer_extreme(dtype: np.dtype) -> Any:
    """The fill of integer arrays that have none of their own: the most negative value, or the largest."""
    return np.iinfo(dtype).min if dtype.kind == "i" else np.iinfo(dtype).max


def _row_dims(variable: variables.ExtraVariable) -> tuple[str, ...]:
    last = variable.row_shape[-1]
    pixels = {l1b.LOW_FREQ_PIXELS: "pixel", l1b.HIGH_FREQ_PIXELS: "pixel_89"}.get(last, f"{variable.name}_byte")
    return (variable.layer_dim, pixels) if variable.layer_dim else (pixels,)


def _extra_variables(archive: Any) -> dict[str, Any]:
    """One Variable per extra variable any swath holds, raw with its scale and fill for CF decoding."""
    import xarray as xr

    per_swath = [set(variables.parse_list(str(v))) for v in _variables_column(archive.table)]
    out: dict[str, Any] = {}
    for name, variable in variables.EXTRA_VARIABLES.items():
        present = np.array([name in held for held in per_swath], dtype=bool)
        if not present.any():
            continue
        fill = export_fill(variable)
        stack = SwathStack(archive, name, variable.row_shape, np.dtype(variable.dtype), fill, present)
        attrs: dict[str, Any] = {"long_name": variable.long_name, "units": variable.units}
        if variable.fill is not None:
            attrs["_FillValue"] = fill
        else:  # flags stay integers (a _FillValue would decode them to float with NaN)
            attrs["comment"] = f"padding rows and swaths without {name} hold {fill}; "
        if variable.standard_name:
            attrs["standard_name"] = variable.standard_name
        if variable.scale_factor is not None:
            attrs["scale_factor"] = np.float32(variable.scale_factor)
        if variable.comment:
            attrs["comment"] = attrs.get("comment", "") + variable.comment
        if archive.geolocation and _row_dims(variable)[-1] == "pixel":
            attrs["coordinates"] = "latitude longitude"
        out[name] = xr.Variable(("swath", "scan", *_row_dims(variable)), _lazy(stack), attrs=attrs)
    return out


def open_archive_dataset(path: str | os.PathLike[str], chunks: Any = None) -> Any:
    """``xarray.open_dataset(path, engine="amsr2flow", chunks=chunks)``, without naming the engine."""
    import xarray as xr

    return xr.open_dataset(path, engine=ENGINE, chunks=chunks)


# -- exports ---------------------------------------------------------------------------------------------
EXPORT_FORMATS = ("zarr", "netcdf")
NETCDF_COMPRESSION = {"zlib": True, "complevel": 4, "shuffle": True}


JOINED_NOTE = (
    "Swaths of several archives in time order, channels aligned by frequency and polarisation. A channel a "
    "sensor does not measure (AMSR-E has no 7.3 GHz) is fill (NaN) in its swaths; AMSR-E's 89 GHz A horn failed "
    "in November 2004, so its 89.0A channels are fill from then on, as in the granules. The per-swath `sensor` "
    "says which instrument each swath is from; no inter-calibration is applied."
)


def _period_ends(dataset: Any) -> tuple[str, str]:
    first, _, last = str(dataset.attrs.get("period", "")).partition(" to ")
    return first, last


def _fill_for(encoding: dict[str, Any], dtype: np.dtype) -> Any:
    """What a missing value is in a variable as opened: NaN/NaT when decoded, else its raw fill."""
    if dtype.kind in "fc":
        return np.nan
    if dtype.kind == "M":
        return np.datetime64("NaT")
    if dtype.kind in "US":
        return ""
    return encoding.get("_FillValue", _integer_extreme(dtype))


def _harmonise(datasets: list[Any], encodings: dict[str, dict[str, Any]]) -> list[Any]:
    """The same variables and ``scan`` length in every dataset: shorter swath stacks padded, a variable or
    coordinate one archive lacks (a channel AMSR-E does not measure, extra variables, scan times) filled, lazily."""
    import dask.array as da
    import xarray as xr

    scans = max(d.sizes.get("scan", 0) for d in datasets)
    templates: dict[str, Any] = {}
    for d in datasets:
        for name, var in d.variables.items():
            templates.setdefault(str(name), var)
    coord_names = _coord_names(datasets)
    out = []
    for d in datasets:
        variables: dict[str, Any] = {}
        for name, template in templates.items():
            var = d.variables.get(name)
            if var is None and name in template.dims:  # a dimension's own coordinate (land_layer): the same
                variables[name] = template
                continue
            if var is None:
                sizes = {
                    dim: d.sizes["swath"] if dim == "swath" else scans if dim == "scan" else template.sizes[dim]
                    for dim in template.dims
                }
                chunks = tuple(1 if dim == "swath" else n for dim, n in sizes.items())
                fill = _fill_for(encodings.get(name, {}), template.dtype)
                data = da.full(tuple(sizes.values()), fill, dtype=template.dtype, chunks=chunks)
                variables[name] = xr.Variable(template.dims, data, attrs=template.attrs)
                continue
            if "scan" in var.dims and var.sizes["scan"] < scans:
                fill = _fill_for(encodings.get(name, {}), var.dtype)
                var = var.pad(scan=(0, scans - var.sizes["scan"]), constant_values=fill)
            variables[name] = var
        out.append(
            xr.Dataset(
                {n: v for n, v in variables.items() if n not in coord_names},
                coords={n: v for n, v in variables.items() if n in coord_names},
                attrs=d.attrs,
            )
        )
    return out


def _coord_names(datasets: list[Any]) -> set[str]:
    return {str(n) for d in datasets for n in d.coords}


def joined_dataset(archive_paths: Iterable[str | os.PathLike[str]], chunks: Any = None) -> Any:
    """One Dataset of several archives (e.g. the AMSR-E and AMSR2 years of one record), in time order along
    ``swath``: the union of their channels and variables, shorter swaths padded, raw encodings kept."""
    import xarray as xr

    paths = [Path(p) for p in archive_paths]
    opened = [open_archive_dataset(p, chunks=chunks) for p in paths]
    try:
        geolocated = {"latitude" in d.coords for d in opened if d.sizes["swath"]}
        if len(geolocated) > 1:
            raise DatasetError("archives with and without positions cannot be joined; export them apart")
        empty = [d for d in opened if not d.sizes["swath"]]
        opened = [d for d in opened if d.sizes["swath"]]  # an empty archive adds nothing to a time series
        for d in empty:
            d.close()
        if not opened:
            raise DatasetError("every archive given is empty; there is nothing to export")
        opened.sort(key=lambda d: d["time"].values[0])
        ids = np.concatenate([d["granule_id"].values for d in opened])
        if len(set(ids.tolist())) < len(ids):
            raise DatasetError(
                "the archives share swaths (the same archive twice, or an archive and its part?); join each once"
            )
        encodings: dict[str, dict[str, Any]] = {}
        for d in opened:
            for name, var in d.variables.items():
                encodings.setdefault(str(name), dict(var.encoding))
        harmonised = _harmonise(opened, encodings)
        joined = xr.concat(
            harmonised,
            dim="swath",
            data_vars="all",
            coords="different",
            compat="equals",
            join="outer",
            combine_attrs="drop_conflicts",
        )
    except DatasetError:
        for d in opened:
            d.close()
        raise
    except ValueError as exc:  # xarray's own refusal, as one message
        for d in opened:
            d.close()
        raise DatasetError(f"the archives cannot be joined: {exc}") from exc
    except BaseException:
        for d in opened:
            d.close()
        raise
    for name, var in joined.variables.items():
        kept = {
            k: v
            for k, v in encodings.get(str(name), {}).items()
            if k in ("dtype", "scale_factor", "add_offset", "_FillValue", "units", "calendar")
        }
        var.encoding = kept
    joined.attrs.update(
        title="AMSR-E and AMSR2 L1B brightness temperatures (swaths)"
        if len(set(joined["sensor"].values.tolist())) > 1
        else opened[0].attrs.get("title", ""),
        comment=JOINED_NOTE,
        history=f"joined from {', '.join(p.name for p in paths)} by amsr2flow {__version__}",
        provenance=json.dumps([json.loads(d.attrs["provenance"]) for d in opened], sort_keys=True),
        period=" to ".join((_period_ends(opened[0])[0], _period_ends(opened[-1])[1])),
    )
    joined.set_close(lambda: [d.close() for d in opened])
    return joined


def export_archive(
    archive_path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], out_path: str | os.PathLike[str], to: str
) -> Path:
    """Write the archive's Dataset (or several archives joined: :func:`joined_dataset`) as a Zarr store or a
    NetCDF-4 file, one swath per chunk, streamed swath by swath (dask), raw uint16 kept; atomically (a
    temporary name beside ``out_path``, then a rename), with the user's umask."""
    if to not in EXPORT_FORMATS:
        raise DatasetError(f"unknown export format {to!r}; use one of {', '.join(EXPORT_FORMATS)}")
    out = Path(out_path)
    if out.exists():
        raise DatasetError(f"{out} exists; remove it or choose another output path")
    paths = [archive_path] if isinstance(archive_path, (str, os.PathLike)) else list(archive_path)
    if len(paths) == 1:
        dataset = open_archive_dataset(paths[0], chunks={"swath": 1})
    else:
        dataset = joined_dataset(paths, chunks={"swath": 1})
    try:
        write_dataset(dataset, out, to, encoding=netcdf_encoding(dataset) if to == "netcdf" else None)
    finally:
        dataset.close()
    return out


def write_dataset(dataset: Any, path: Path, to: str, encoding: dict[str, dict[str, Any]] | None = None) -> None:
    """A Dataset as a Zarr store (format 2, consolidated) or a NetCDF-4 file (h5netcdf), atomically: under a
    temporary name beside ``path``, renamed into place (an existing ``path`` is replaced), with the user's
    umask. ``encoding`` goes to ``to_netcdf``."""
    import shutil

    path.parent.mkdir(parents=True, exist_ok=True)
    if to == "zarr":
        temporary = atomic.temporary_folder_beside(path)
        try:
            # Zarr format 2: its fixed-width strings (granule ids) are stable, format 3's are not yet
            dataset.to_zarr(temporary, mode="w", consolidated=True, zarr_format=2)
            if path.exists():
                shutil.rmtree(path)
            os.replace(temporary, path)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
    else:
        with atomic.atomic_path(path) as temporary:
            dataset.to_netcdf(temporary, engine="h5netcdf", encoding=encoding)


def netcdf_encoding(dataset: Any) -> dict[str, dict[str, Any]]:
    """Compression and one-swath chunks for the 3-d variables. Explicit encodings replace the decoded ones, so
    the raw dtype, scale and fill are carried into them."""
    kept = ("dtype", "scale_factor", "add_offset", "_FillValue")
    return {
        name: {
            **{k: v for k, v in var.encoding.items() if k in kept},
            **NETCDF_COMPRESSION,
            "chunksizes": (1, *var.shape[1:]),
        }
        for name, var in dataset.variables.items()
        if var.dims[:1] == ("swath",) and var.ndim >= 3
    }
