"""OmniAnomaly as TSB-AD runs it: a recurrent variational autoencoder of every metric of an entity.

Su et al., "Robust Anomaly Detection for Multivariate Time Series through Stochastic Recurrent Neural
Network", KDD 2019; among TSB-AD's best multivariate methods. TSB-AD's version, which this follows, at its
settings (a window of 100 rows, learning rate 0.002, 50 epochs with early stopping after 3, the last fifth
of the training windows validating): a two-layer GRU of 32 units reads the window; at each step two dense
layers (PReLU) give the mean and log-variance of an 8-dimensional Gaussian latent, and a sample of it is
decoded by two more into the step's row. Training minimises the window's mean squared reconstruction error
plus ``beta`` (0.01) times the latents' KL divergence from a standard normal; a window scores its mean
squared reconstruction error, at the row that ends it (causal, where TSB-AD centres it).

Where Passion departs from TSB-AD, on purpose:

- The inputs are standardised on training (``KerasDetector``'s scaler), not scaled to [0, 1], so the
  decoder ends linear, not sigmoid (as ``usad`` departs).
- Scoring decodes the latent's mean, not a sample: a row scores the same every time it is scored.
- Each window's GRU starts from zeros; TSB-AD carries the hidden state from one batch to the next, which
  ties a window's score to whichever window its loader served before it.
- Adam, without TSB-AD's weight decay of 1e-5 and step schedule.

Like TSB-AD, it leaves out the paper's planar normalising flow and the linear Gaussian state-space link
between consecutive latents. The trained model is saved as a plain functional model from a window to its
reconstruction at the latent's mean (GRU, Dense and PReLU layers only), loaded with Keras' safe mode.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import layers

from passion_tasks.detectors.base import DetectorError
from passion_tasks.detectors.keras_detectors import WINDOWS_PER_EPOCH, KerasReconstructor


class OmniAnomalyDetector(KerasReconstructor):
    """OmniAnomaly (TSB-AD's) on windows of ``window`` rows of every column; see the module docstring."""

    name = "omni_anomaly"
    reads_every_column = True

    def __init__(
        self,
        window: int = 100,
        hidden: int = 32,
        latent: int = 8,
        beta: float = 0.01,
        learning_rate: float = 0.002,
        epochs: int = 50,
        batch_size: int = 128,
        validation_split: float = 0.2,
        patience: int = 3,
        windows_per_epoch: int | None = WINDOWS_PER_EPOCH,
        random_state: int = 0,
        verbose: int = 0,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(
            window=window,
            epochs=epochs,
            batch_size=batch_size,
            validation_split=validation_split,
            patience=patience,
            windows_per_epoch=windows_per_epoch,
            random_state=random_state,
            verbose=verbose,
            threshold=threshold,
            threshold_params=threshold_params,
        )
        self.hidden = hidden
        self.latent = latent
        self.beta = beta
        self.learning_rate = learning_rate

    def _build_model(self, features: int) -> keras.Model:
        model = VariationalRecurrentAutoencoder(
            self.window, features, self.hidden, self.latent, self.beta, self.random_state
        )
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), jit_compile=False)
        return model

    def _scoring_model(self, trained: keras.Model) -> keras.Model:
        return trained.reconstruction()

    def _fit(self, frame: pd.DataFrame) -> None:
        self._check_integers({"hidden": 1, "latent": 1})
        if not (isinstance(self.beta, int | float) and self.beta >= 0):
            raise DetectorError(f"{self.name}: beta must be a number >= 0, got {self.beta!r}")
        if not (isinstance(self.learning_rate, int | float) and self.learning_rate > 0):
            raise DetectorError(
                f"{self.name}: learning_rate must be a positive number, got {self.learning_rate!r}"
            )
        super()._fit(frame)

    def _score_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        scores = np.full(len(frame), np.nan)
        for rows, inputs, reconstruction in self._reconstructions(frame):
            scores[rows] = np.square(inputs - reconstruction).mean(axis=(1, 2))
        return scores, np.full(len(frame), np.nan)


class VariationalRecurrentAutoencoder(keras.Model):
    """The GRU encoder to a Gaussian latent per step and the decoder back to the step's row, trained on
    the reconstruction error of a sampled latent plus ``beta`` times its KL divergence."""

    def __init__(
        self, window: int, features: int, hidden: int, latent: int, beta: float, seed: int, **kwargs: Any
    ):
        super().__init__(**kwargs)
        windows = keras.Input(shape=(window, features))
        steps = layers.GRU(hidden, return_sequences=True)(windows)
        steps = layers.GRU(hidden, return_sequences=True)(steps)
        for _ in range(2):
            steps = layers.PReLU(shared_axes=[1, 2])(layers.Dense(hidden)(steps))
        self.encoder = keras.Model(
            windows, [layers.Dense(latent)(steps), layers.Dense(latent)(steps)], name="encoder"
        )
        codes = keras.Input(shape=(window, latent))
        rows = codes
        for _ in range(2):
            rows = layers.PReLU(shared_axes=[1, 2])(layers.Dense(hidden)(rows))
        self.decoder = keras.Model(codes, layers.Dense(features)(rows), name="decoder")
        self.beta = beta
        self.noise = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker]

    def call(self, windows: Any, training: bool = False) -> Any:
        mean, _ = self.encoder(windows, training=training)
        return self.decoder(mean, training=training)

    def reconstruction(self) -> keras.Model:
        """A plain functional model from a window to its reconstruction at the latent's mean."""
        windows = keras.Input(shape=self.encoder.input_shape[1:])
        mean, _ = self.encoder(windows)
        return keras.Model(windows, self.decoder(mean), name="omni_anomaly")

    def _loss(self, windows: Any, training: bool) -> Any:
        mean, log_variance = self.encoder(windows, training=training)
        codes = mean
        if training:
            noise = keras.random.normal(tf.shape(mean), seed=self.noise)
            codes = mean + tf.exp(0.5 * log_variance) * noise
        error = tf.reduce_mean(tf.square(windows - self.decoder(codes, training=training)), axis=[1, 2])
        spread = tf.exp(log_variance)
        divergence = -0.5 * tf.reduce_sum(1 + log_variance - tf.square(mean) - spread, axis=[1, 2])
        return tf.reduce_mean(error + self.beta * divergence)

    def train_step(self, data: Any) -> dict[str, Any]:
        windows = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            loss = self._loss(windows, training=True)
        self.optimizer.apply(tape.gradient(loss, self.trainable_variables), self.trainable_variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data: Any) -> dict[str, Any]:
        windows = data[0] if isinstance(data, tuple) else data
        self.loss_tracker.update_state(self._loss(windows, training=False))
        return {"loss": self.loss_tracker.result()}
