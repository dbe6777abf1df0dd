"""Matplotlib figures as self-contained page content."""

from __future__ import annotations

import base64
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def png_data_uri(figure: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI, for an ``<img>`` in a single-file page."""
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
