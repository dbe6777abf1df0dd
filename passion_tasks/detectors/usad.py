"""USAD: an adversarially trained autoencoder of every metric of an entity, window by window.

Audibert et al., "USAD: UnSupervised Anomaly Detection on Multivariate Time Series", KDD 2020; among
TSB-AD's best multivariate methods. One encoder ``E`` and two decoders: ``AE1 = D1(E(w))`` and
``AE2 = D2(E(w))``. At epoch ``n`` the first learns to reconstruct the window and to fool the second,
the second to reconstruct it and to tell ``AE1``'s reconstruction from the real thing:

- ``L1 = |w - AE1(w)|² / n + (1 - 1/n) |w - AE2(AE1(w))|²``
- ``L2 = |w - AE2(w)|² / n - (1 - 1/n) |w - AE2(AE1(w))|²``

and a window scores ``alpha |w - AE1(w)|² + beta |w - AE2(AE1(w))|²`` (means over its cells), at the row
that ends it (causal). Where Passion departs from the paper: the inputs are standardised on training
(``KerasDetector``'s scaler) instead of scaled to [0, 1], so the decoders end linear, not sigmoid; early
stopping watches the validation windows' score, the last tenth of the training windows in time.

The trained model is saved as a plain functional model from a window to its two reconstructions (Dense
and Reshape layers only), loaded with Keras' safe mode: the custom training step is not needed to score.
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


class UsadDetector(KerasReconstructor):
    """USAD on windows of ``window`` rows of every column; ``latent`` units in the middle."""

    name = "usad"
    reads_every_column = True

    def __init__(
        self,
        window: int = 10,
        latent: int = 40,
        alpha: float = 0.5,
        learning_rate: float = 1e-3,
        epochs: int = 30,
        batch_size: int = 128,
        validation_split: float = 0.1,
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
        self.latent = latent
        self.alpha = alpha
        self.learning_rate = learning_rate

    def _build_model(self, features: int) -> keras.Model:
        model = AdversarialAutoencoder(self.window, features, self.latent, self.alpha)
        model.compile_both(self.learning_rate)
        return model

    def _scoring_model(self, trained: keras.Model) -> keras.Model:
        return trained.reconstructions()

    def _fit(self, frame: pd.DataFrame) -> None:
        if not 0 <= self.alpha <= 1:
            raise DetectorError(f"{self.name}: alpha must be in [0, 1], got {self.alpha!r}")
        self._check_integers({"latent": 1})
        super()._fit(frame)

    def _callbacks(self) -> list[keras.callbacks.Callback]:
        return [EpochCount()]

    def _score_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        scores = np.full(len(frame), np.nan)
        for rows, inputs, (first, second) in self._reconstructions(frame):
            scores[rows] = window_scores(inputs, first, second, self.alpha)
        return scores, np.full(len(frame), np.nan)


def window_scores(windows: np.ndarray, first: np.ndarray, second: np.ndarray, alpha: float) -> np.ndarray:
    """``alpha |w - AE1(w)|² + (1 - alpha) |w - AE2(AE1(w))|²``, each the mean over the window's cells."""
    return alpha * np.square(windows - first).mean(axis=(1, 2)) + (1 - alpha) * np.square(
        windows - second
    ).mean(axis=(1, 2))


class AdversarialAutoencoder(keras.Model):
    """The encoder and two decoders, trained by USAD's two-player step (see the module docstring)."""

    def __init__(self, window: int, features: int, latent: int, alpha: float, **kwargs: Any):
        super().__init__(**kwargs)
        size = window * features
        self.alpha = alpha
        self.encoder = keras.Sequential(
            [
                keras.Input(shape=(window, features)),
                layers.Flatten(),
                layers.Dense(max(size // 2, latent), activation="relu"),
                layers.Dense(max(size // 4, latent), activation="relu"),
                layers.Dense(latent, activation="relu"),
            ],
            name="encoder",
        )
        self.decoders = [
            keras.Sequential(
                [
                    keras.Input(shape=(latent,)),
                    layers.Dense(max(size // 4, latent), activation="relu"),
                    layers.Dense(max(size // 2, latent), activation="relu"),
                    layers.Dense(size),
                    layers.Reshape((window, features)),
                ],
                name=f"decoder{number}",
            )
            for number in (1, 2)
        ]
        self.epoch = keras.Variable(1.0, trainable=False, name="epoch")
        self.score_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.score_tracker]

    def compile_both(self, learning_rate: float) -> None:
        """Compile, with one Adam optimiser per player, built on its variables."""
        super().compile(jit_compile=False)
        self.players = [
            self.encoder.trainable_variables + decoder.trainable_variables for decoder in self.decoders
        ]
        self.optimisers = [keras.optimizers.Adam(learning_rate) for _ in self.decoders]
        for optimiser, variables in zip(self.optimisers, self.players, strict=True):
            optimiser.build(variables)

    def call(self, windows: Any, training: bool = False) -> tuple[Any, Any]:
        first = self.decoders[0](self.encoder(windows, training=training), training=training)
        return first, self.decoders[1](self.encoder(first, training=training), training=training)

    def reconstructions(self) -> keras.Model:
        """A plain functional model from a window to ``(AE1(w), AE2(AE1(w)))``, sharing these weights."""
        windows = keras.Input(shape=self.encoder.input_shape[1:])
        first = self.decoders[0](self.encoder(windows))
        return keras.Model(windows, [first, self.decoders[1](self.encoder(first))], name="usad")

    def train_step(self, data: Any) -> dict[str, Any]:
        windows = data[0] if isinstance(data, tuple) else data
        share = 1.0 / self.epoch
        with tf.GradientTape(persistent=True) as tape:
            code = self.encoder(windows, training=True)
            first = self.decoders[0](code, training=True)
            second = self.decoders[1](code, training=True)
            both = self.decoders[1](self.encoder(first, training=True), training=True)
            first_error = tf.reduce_mean(tf.square(windows - first))
            second_error = tf.reduce_mean(tf.square(windows - second))
            both_error = tf.reduce_mean(tf.square(windows - both))
            losses = (
                share * first_error + (1 - share) * both_error,
                share * second_error - (1 - share) * both_error,
            )
        for optimiser, variables, loss in zip(self.optimisers, self.players, losses, strict=True):
            optimiser.apply(tape.gradient(loss, variables), variables)
        del tape
        self.score_tracker.update_state(self.alpha * first_error + (1 - self.alpha) * both_error)
        return {"loss": self.score_tracker.result()}

    def test_step(self, data: Any) -> dict[str, Any]:
        windows = data[0] if isinstance(data, tuple) else data
        first, both = self(windows)
        score = self.alpha * tf.reduce_mean(tf.square(windows - first))
        self.score_tracker.update_state(score + (1 - self.alpha) * tf.reduce_mean(tf.square(windows - both)))
        return {"loss": self.score_tracker.result()}


class EpochCount(keras.callbacks.Callback):
    """Tells the model which epoch it is in (1, 2, ...): USAD's losses weigh by it."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.model.epoch.assign(float(epoch + 1))
