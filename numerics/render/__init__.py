"""Markdown and PNG renderings of analysis results (written through
``numerics.io.report``)."""

import matplotlib

matplotlib.use("Agg")    # headless: reports are written to files, never shown
