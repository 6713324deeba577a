"""The xarray engine ``amsr2flow``: ``xarray.open_dataset("AMSR2_temp_only_...npz", engine="amsr2flow")``.

Registered in pyproject.toml (``xarray.backends`` entry points); the Dataset is ``formats.dataset``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xarray.backends import BackendEntrypoint

from .archive import Archive
from .dataset import archive_dataset


class ArchiveBackend(BackendEntrypoint):
    """``xarray.open_dataset("AMSR2_temp_only_...npz", engine="amsr2flow")`` (registered in pyproject.toml)."""

    description = "amsr2flow NPZ archives of AMSR2/AMSR-E swaths, as CF Datasets (swath, scan, pixel)"
    open_dataset_parameters = (
        "filename_or_obj",
        "drop_variables",
        "mask_and_scale",
        "decode_times",
        "decode_timedelta",
        "use_cftime",
        "concat_characters",
        "decode_coords",
    )

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: Any = None,
        mask_and_scale: bool = True,
        decode_times: bool = True,
        decode_timedelta: Any = None,
        use_cftime: Any = None,
        concat_characters: bool = True,
        decode_coords: Any = True,
    ) -> Any:
        archive = Archive(filename_or_obj)
        dataset = archive_dataset(
            archive,
            mask_and_scale=mask_and_scale,
            decode_times=decode_times,
            decode_timedelta=decode_timedelta,
            use_cftime=use_cftime,
            concat_characters=concat_characters,
            decode_coords=decode_coords,
        )
        if drop_variables:
            dataset = dataset.drop_vars(drop_variables)
        dataset.set_close(archive.close)
        return dataset

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        try:
            return Path(filename_or_obj).suffix == ".npz"
        except TypeError:
            return False
