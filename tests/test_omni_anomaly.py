"""OmniAnomaly, TSB-AD's recurrent variational autoencoder of an entity's metrics
(``detectors.omni_anomaly``): it really trains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from entities import TRAIN, assert_causal, coupled_metrics
from sklearn.metrics import roc_auc_score

from passion_tasks.detectors import DetectorError, detector_class, load_detector, make_detector, uses_keras

#: A shorter window and fewer epochs than TSB-AD's 100 rows and 50 epochs: a few seconds to train here.
SETTINGS = {"window": 20, "epochs": 10}


@pytest.fixture(scope="module")
def fitted():
    frame, labels = coupled_metrics()
    return make_detector("omni_anomaly", **SETTINGS).fit(frame.iloc[:TRAIN]), frame, labels


def test_a_metric_that_breaks_from_the_others_ranks_above_normal_rows(fitted) -> None:
    detector, frame, labels = fitted
    scores = detector.decision_function(frame)
    # ROC AUC measured 0.973; training differs a little from one CPU to another.
    assert roc_auc_score(labels[TRAIN:], scores.iloc[TRAIN:]) > 0.85
    assert scores.iloc[5000:5030].max() > detector.threshold_
    # Trained over several epochs, early stopping on the validation windows' loss.
    assert 1 <= len(detector.training_loss_) == len(detector.validation_loss_) <= SETTINGS["epochs"]


def test_a_row_scores_its_windows_mean_squared_reconstruction_error(fitted) -> None:
    detector, frame, _ = fitted
    scaled = ((frame - detector.scaler_mean_) / detector.scaler_scale_).to_numpy(dtype=np.float32)
    window = scaled[4980:5000][None]
    reconstruction = np.asarray(detector.model_.predict_on_batch(window))
    expected = np.square(window - reconstruction).mean()
    scores = detector.decision_function(frame)
    assert scores.iloc[4999] == pytest.approx(expected, rel=1e-5)
    # Decoded at the latent's mean, not a sample of it: the same rows score the same each time (up to
    # float32 rounding, which a sample's spread would dwarf).
    np.testing.assert_allclose(detector.decision_function(frame), scores, rtol=1e-6)


def test_saved_omni_anomaly_loads_back_as_a_plain_model(fitted, tmp_path: Path) -> None:
    detector, frame, _ = fitted
    folder = detector.save(tmp_path / "omni_anomaly")
    loaded = load_detector(folder)
    # The encoder's mean feeds the decoder; the sampling is training's alone.
    assert [layer.name for layer in loaded.model_.layers[1:]] == ["encoder", "decoder"]
    np.testing.assert_allclose(loaded.decision_function(frame), detector.decision_function(frame), rtol=1e-6)


def test_omni_anomaly_scores_are_causal(fitted) -> None:
    detector, frame, _ = fitted
    assert_causal(detector, frame, rtol=1e-6)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"latent": 0}, "latent must be an integer >= 1, got 0"),
        ({"hidden": 2.5}, "hidden must be an integer >= 1, got 2.5"),
        ({"beta": -1}, "beta must be a number >= 0"),
        ({"learning_rate": 0}, "learning_rate must be a positive number"),
    ],
)
def test_bad_settings_are_refused_by_name(params: dict, message: str) -> None:
    assert uses_keras("omni_anomaly") and detector_class("omni_anomaly").reads_every_column
    frame, _ = coupled_metrics()
    with pytest.raises(DetectorError, match=message):
        make_detector("omni_anomaly", **params).fit(frame.iloc[:TRAIN])
