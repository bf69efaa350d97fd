"""Reading ``.npz`` files written by the toolkit or by others (Occ3D labels): every error names the file and field."""
from __future__ import annotations

import os
import zipfile
from typing import Dict, Sequence, Union

import numpy as np


def read_npz(path: Union[str, os.PathLike], fields: Sequence[str], what: str, expected: str = "",
             only_fields: bool = False) -> Dict[str, np.ndarray]:
    """The arrays of the ``.npz`` at ``path`` (all, or only ``fields``), after checking that it exists, opens and
    has every name in ``fields``.

    ``what`` names the kind of file in the messages ("occupancy file", "Occ3D labels"); ``expected`` says where the
    expected fields come from (default: the field list). Raises FileNotFoundError (missing file), KeyError (missing
    field) or ValueError (not a zip, a truncated file, an object array: ``allow_pickle`` is off).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in fields if k not in npz.files]
            if missing:
                raise KeyError(f"{path}: no field {missing[0]!r} in the {what} (has {sorted(npz.files)}; "
                               f"{expected or 'expected ' + str(list(fields))})")
            return {k: npz[k] for k in (fields if only_fields else npz.files)}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from exc
