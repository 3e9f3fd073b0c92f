"""Atomic file writing and safe ``.npz`` reading.

Every file the toolkit writes goes through :func:`atomic_files`: the content
is written to temporary files in the target folder first, and only when all
of them are complete are they renamed over their targets, so a reader (or an
interrupted run) never sees a partly written file.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile

import numpy as np

from theory.errors import InputError


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


#: Mode of written files: what ``open`` would give (mkstemp makes 0600).
_FILE_MODE = _umask_mode()


def jsonable(x):
    """JSON fallback for tensors, arrays and numpy scalars (else ``str``)."""
    if hasattr(x, "detach"):
        return x.detach().cpu().tolist()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return str(x)


def json_text(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, default=jsonable) + "\n"


def figure_bytes(fig, dpi: int = 100) -> bytes:
    """A matplotlib figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def npz_bytes(arrays: dict) -> bytes:
    """``numpy.savez`` of ``arrays`` (no pickled objects) as bytes."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def atomic_files(files: dict[str, str | bytes]) -> list[str]:
    """Write every ``{path: text or bytes}`` atomically as a set: all
    temporary files first, then the renames (in the given order: put the file
    readers look for first, e.g. the Markdown report, last)."""
    staged = []
    try:
        for path, data in files.items():
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix="-" + os.path.basename(path))
            staged.append((tmp, path))
            with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as fh:
                fh.write(data)
            os.chmod(tmp, _FILE_MODE)
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return list(files)


def atomic_write(path: str, data: str | bytes):
    atomic_files({path: data})


def atomic_write_json(path: str, obj):
    atomic_files({path: json_text(obj)})


def atomic_savefig(fig, path: str, dpi: int = 100):
    atomic_files({path: figure_bytes(fig, dpi)})


def atomic_savez(path: str, **arrays):
    atomic_files({path: npz_bytes(arrays)})


def load_npz(path: str, field: str) -> dict:
    """Every array of the ``.npz`` file ``path`` (``allow_pickle=False``),
    each numeric; anything else raises :class:`InputError` naming ``field``
    (or ``field.KEY`` for a non-numeric array)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise InputError(field, f"no such file {path}") from None
    except IsADirectoryError:
        raise InputError(field, f"{path} is a directory, not an .npz file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise InputError(field, f"{path} is not a readable .npz file of numeric arrays ({e})") from None
    for k, a in arrays.items():
        if a.dtype.kind not in "fiu":
            raise InputError(f"{field}.{k}", f"expected a numeric array, got dtype {a.dtype}")
    return arrays
