"""The one report writer: Markdown, JSON and PNG figures of one result,
written atomically as a set; every report header records the command that
reproduces it, its configuration and the library versions."""
from __future__ import annotations

import json
import platform

import matplotlib
import numba
import numpy
import scipy
import sympy
import torch

from numerics.io.files import atomic_files, figure_bytes, json_text, jsonable

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)


def versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__, "sympy": sympy.__version__, "numba": numba.__version__}


def run_header(command: str, config: dict | None = None) -> str:
    """Markdown header: the reproducing command, the configuration and versions."""
    lines = ["", f"Reproduce: `{command}`", ""]
    if config is not None:
        lines.append("Config: `" + json.dumps(dict(sorted(config.items())), default=jsonable) + "`")
        lines.append("")
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    lines.append("")
    return "\n".join(lines)


def write_report(base: str, *, markdown: str | None = None, data: dict | None = None,
                 figures: dict | None = None, dpi: int = 100) -> dict[str, str]:
    """Write ``base.md``, ``base.json`` and ``base<suffix>.png`` for each
    ``{suffix: matplotlib figure}`` (suffix ``""`` gives ``base.png``), all
    atomically as one set (the Markdown renamed last).  Figures are closed.
    Returns ``{"md": path, "json": path, "png<suffix>": path, ...}``."""
    files, paths = {}, {}
    for suffix, fig in (figures or {}).items():
        path = f"{base}{suffix}.png"
        files[path] = figure_bytes(fig, dpi)
        paths["png" + suffix] = path
        plt.close(fig)
    if data is not None:
        files[base + ".json"] = json_text(data)
        paths["json"] = base + ".json"
    if markdown is not None:
        files[base + ".md"] = markdown
        paths["md"] = base + ".md"
    atomic_files(files)
    return paths
