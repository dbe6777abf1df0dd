"""The incident's plot, attached to alert emails: the report's incident figure, as PNG bytes."""

from __future__ import annotations

import pandas as pd

from passion_tasks.alerting.rules import Incident
from passion_tasks.figures import incident_figure, png_bytes

#: Series drawn, most anomalous first; the email lists them all and the report has every plot.
MAX_SERIES_PLOTTED = 6
#: Time shown before and after the incident, so the reader sees what normal looked like.
CONTEXT = pd.Timedelta(hours=2)


def incident_png(scores: pd.DataFrame, incident: Incident) -> bytes:
    """Actual vs expected with anomalous minutes in red for the incident's most anomalous series, the
    first with its score and threshold. ``scores`` are the day's rows in ``schemas.SCORES`` columns."""
    shown: list[tuple[str, str]] = []
    for anomaly in sorted(incident.anomalies, key=lambda anomaly: -anomaly.ratio):
        if (anomaly.series, anomaly.detector) not in shown:
            shown.append((anomaly.series, anomaly.detector))
    window = scores[(scores["ts"] >= incident.start - CONTEXT) & (scores["ts"] <= incident.end + CONTEXT)]
    rows = [
        window[(window["series"] == series) & (window["detector"] == detector)].sort_values("ts")
        for series, detector in shown[:MAX_SERIES_PLOTTED]
    ]
    figure = incident_figure(rows, (incident.start, incident.end + pd.Timedelta(minutes=1)))
    title = f"Incident {incident.start:%Y-%m-%d %H:%M}-{incident.end:%H:%M} UTC"
    if len(shown) > MAX_SERIES_PLOTTED:
        title += f", the {MAX_SERIES_PLOTTED} most anomalous of {len(shown)} series"
    figure.suptitle(title, fontsize="medium")
    return png_bytes(figure)
