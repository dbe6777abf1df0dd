"""Names of the real labelled corpora Passion imports and benchmarks on (light enough for DAG files)."""

CORPORA = ("nab", "asd", "smd", "kpi", "nasa-http")
