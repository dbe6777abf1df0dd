"""Evaluation of detectors against labelled benchmarks: the Numenta Anomaly Benchmark (NAB) scorer.

``nab_corpus`` reads NAB's corpus, profiles, thresholds and a detector's results folder; ``nab``
holds the scoring rules, the threshold optimisation and the normalisation.
"""
