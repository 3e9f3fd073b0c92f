"""Atomic report writing and run metadata (every report header records
seed, config and library versions)."""
from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


#: Mode of written reports: what ``open`` would give (mkstemp makes 0600).
_FILE_MODE = _umask_mode()


def atomic_write(path: str, data: str | bytes):
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``:
    readers never see a partly written file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, mode) as fh:
            fh.write(data)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_json(path: str, obj):
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def atomic_savefig(fig, path: str, **kw):
    """Save a matplotlib figure atomically (PNG)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", **kw)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_npz(path: str, field: str) -> dict:
    """Every array of the ``.npz`` file ``path`` (``allow_pickle=False``),
    each numeric; anything else raises :class:`InputError` naming ``field``
    (or ``field.KEY`` for a non-numeric array)."""
    import zipfile
    import numpy as np
    from numerics.errors import InputError
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise InputError(field, f"no such file {path}") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(field, f"{path} is not a readable .npz file of numeric arrays ({e})") from None
    for k, a in arrays.items():
        if a.dtype.kind not in "fiu":
            raise InputError(f"{field}.{k}", f"expected a numeric array, got dtype {a.dtype}")
    return arrays


def atomic_savez(path: str, **arrays):
    """``numpy.savez`` to ``path`` atomically (no pickled objects)."""
    import numpy as np
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def torch_threads(threads: int | None, device=None):
    """Run with ``threads`` intra-op CPU threads (None, or a non-CPU device:
    leave as is), restoring the previous setting.  The batched operations of
    training, flow and control are small (~10^5 numbers); on a busy 2-core
    machine two OpenMP threads made them 5-10x slower than one."""
    import torch
    if threads is None or (device is not None and torch.device(device).type != "cpu"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _jsonable(x):
    try:
        import torch
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().tolist()
    except ImportError:  # pragma: no cover
        pass
    try:
        import numpy as np
        if isinstance(x, np.ndarray):
            return x.tolist()
        if isinstance(x, np.generic):
            return x.item()
    except ImportError:  # pragma: no cover
        pass
    return str(x)


def versions() -> dict:
    import numpy, scipy, sympy, torch
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__, "sympy": sympy.__version__}


def run_header(command: str, args=None) -> str:
    """Markdown header: the reproducing command, config and versions."""
    lines = ["", f"Reproduce: `{command}`", ""]
    if args is not None:
        cfg = {k: v for k, v in sorted(vars(args).items()) if k not in ("func", "command")}
        lines.append("Config: `" + json.dumps(cfg, default=str) + "`")
        lines.append("")
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    lines.append("")
    return "\n".join(lines)
