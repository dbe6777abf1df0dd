"""USAD, the adversarial autoencoder of an entity's metrics (``detectors.usad``): it really trains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from entities import TRAIN, assert_causal, coupled_metrics
from sklearn.metrics import roc_auc_score

from passion_tasks.detectors import DetectorError, detector_class, load_detector, make_detector, uses_keras
from passion_tasks.detectors.usad import window_scores


@pytest.fixture(scope="module")
def fitted():
    frame, labels = coupled_metrics()
    return make_detector("usad").fit(frame.iloc[:TRAIN]), frame, labels


def test_a_metric_that_breaks_from_the_others_ranks_above_normal_rows(fitted) -> None:
    detector, frame, labels = fitted
    scores = detector.decision_function(frame)
    # ROC AUC measured 0.9506; training differs a little from one CPU to another.
    assert roc_auc_score(labels[TRAIN:], scores.iloc[TRAIN:]) > 0.85
    assert scores.iloc[5000:5030].max() > detector.threshold_
    # Two players trained over several epochs, early stopping on the validation windows' score.
    assert 1 <= len(detector.training_loss_) == len(detector.validation_loss_) <= 30


def test_the_score_is_usads_mix_of_the_two_reconstruction_errors(fitted) -> None:
    detector, frame, _ = fitted
    scaled = ((frame - detector.scaler_mean_) / detector.scaler_scale_).to_numpy(dtype=np.float32)
    window = scaled[4990:5000][None]
    first, second = detector.model_.predict_on_batch(window)
    expected = window_scores(window, np.asarray(first), np.asarray(second), detector.alpha)[0]
    assert detector.decision_function(frame).iloc[4999] == pytest.approx(expected, rel=1e-5)


def test_saved_usad_loads_back_as_a_plain_model(fitted, tmp_path: Path) -> None:
    detector, frame, _ = fitted
    folder = detector.save(tmp_path / "usad")
    loaded = load_detector(folder)
    # The encoder, shared by both paths, and the two decoders: no custom class to load.
    assert [layer.name for layer in loaded.model_.layers[1:]] == ["encoder", "decoder1", "decoder2"]
    assert {type(layer).__name__ for layer in loaded.model_.layers[1:]} == {"Sequential"}
    np.testing.assert_allclose(loaded.decision_function(frame), detector.decision_function(frame), rtol=1e-6)


def test_usad_scores_are_causal(fitted) -> None:
    detector, frame, _ = fitted
    assert_causal(detector, frame, rtol=1e-6)


def test_usad_is_a_keras_network_that_reads_every_column() -> None:
    assert uses_keras("usad") and not uses_keras("sub_pca")
    assert detector_class("usad").reads_every_column
    frame, _ = coupled_metrics()
    with pytest.raises(DetectorError, match=r"alpha must be in \[0, 1\]"):
        make_detector("usad", alpha=1.5).fit(frame.iloc[:TRAIN])
    with pytest.raises(DetectorError, match="latent must be an integer >= 1"):
        make_detector("usad", latent=0).fit(frame.iloc[:TRAIN])
