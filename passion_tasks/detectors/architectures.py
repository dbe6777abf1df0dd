"""The seed notebooks' Keras architectures, as pure builder functions.

Each ``build_<name>(window, features, **hyperparameters)`` returns a fresh model compiled with loss
``"mae"`` and the Adam optimizer, as in the seeds. The defaults are the seeds' values, so each builder at
the seed's input shape has the seed's parameter count exactly (as printed by the seed's ``model.summary()``
for ``gru_dense``, ``cnn1d``, ``mlstm_fcn`` and ``lstm_autoencoder``; the other seeds print none):

=====================  ============  ============  =================================================
name                   seed shape    parameters    seed
=====================  ============  ============  =================================================
``lstm``               1440 x 1      10,451        Passion v4.1, section 3
``gru``                1440 x 1      8,001         Passion v4.1, "GRU simple"
``gru_dense``          1440 x 1      13,151        Passion v4.1, "GRU + 1D CNN"
``cnn1d``              1440 x 1      4,608,009     Passion v4.1, section 4
``lstm_ohlc``          1440 x 5      11,251        Passion v4.1, section 4.1
``mlstm_fcn``          1440 x 5      1,750,089     Passion v4.1, section 4.2 (1,024 non-trainable)
``lstm_autoencoder``   30 x 1        198,273       CDN LSTM autoencoder
=====================  ============  ============  =================================================

Forecasters map ``(batch, window, features)`` to ``(batch, 1)``, the next value of the first feature; the
autoencoder maps it to ``(batch, window, features)``, its reconstruction.

This module imports TensorFlow (through Keras): import it only where a Keras model is built, never at the
top level of a DAG file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
from keras import layers

OHLC_FEATURES = 5
"""The value plus the previous hour's open, close, max and min."""


def _compiled(model: keras.Model) -> keras.Model:
    model.compile(loss="mae", optimizer=keras.optimizers.Adam())
    return model


def build_lstm(window: int = 1440, features: int = 1, *, units: int = 50) -> keras.Model:
    """LSTM(units) + Dense(1): next-value forecaster."""
    model = keras.Sequential(
        [keras.Input(shape=(window, features)), layers.LSTM(units), layers.Dense(1)], name="lstm"
    )
    return _compiled(model)


def build_gru(window: int = 1440, features: int = 1, *, units: int = 50) -> keras.Model:
    """GRU(units) + Dense(1): next-value forecaster.

    Keras 3's GRU default ``reset_after=True`` keeps two bias vectors per gate, which gives the seed's
    7,950 GRU parameters on one feature: 3 * (50 * (1 + 50) + 2 * 50).
    """
    model = keras.Sequential(
        [keras.Input(shape=(window, features)), layers.GRU(units), layers.Dense(1)], name="gru"
    )
    return _compiled(model)


def build_gru_dense(
    window: int = 1440,
    features: int = 1,
    *,
    units: int = 50,
    dense_units: int = 100,
    dropout: float = 0.2,
) -> keras.Model:
    """GRU(units), Dense(dense_units), Dropout, Dense(1): next-value forecaster.

    The seed's hidden Dense has no activation; kept as is. GRU parameters as in :func:`build_gru`.
    """
    model = keras.Sequential(
        [
            keras.Input(shape=(window, features)),
            layers.GRU(units),
            layers.Dense(dense_units),
            layers.Dropout(dropout),
            layers.Dense(1),
        ],
        name="gru_dense",
    )
    return _compiled(model)


def build_cnn1d(
    window: int = 1440,
    features: int = 1,
    *,
    filters: int = 64,
    kernel_size: int = 3,
    dropout: float = 0.3,
    pool_size: int = 2,
    dense_units: int = 100,
) -> keras.Model:
    """Two Conv1D(relu), Dropout, MaxPooling1D, Flatten, Dense(relu), Dense(1): next-value forecaster."""
    model = keras.Sequential(
        [
            keras.Input(shape=(window, features)),
            layers.Conv1D(filters, kernel_size, activation="relu"),
            layers.Conv1D(filters, kernel_size, activation="relu"),
            layers.Dropout(dropout),
            layers.MaxPooling1D(pool_size),
            layers.Flatten(),
            layers.Dense(dense_units, activation="relu"),
            layers.Dense(1),
        ],
        name="cnn1d",
    )
    return _compiled(model)


def build_windowed_cnn(
    window: int = 100,
    features: int = 1,
    *,
    channels: tuple[int, ...] = (32, 40),
    kernel_size: int = 3,
    dense_units: int = 40,
    dropout: float = 0.25,
    learning_rate: float = 8e-4,
) -> keras.Model:
    """TSB-AD's CNN (after DeepAnT): Conv1D(relu) and MaxPooling1D(2) per channel count, the average and
    the maximum over time side by side, Dense(relu), Dropout, Dense(features): every metric's next value.
    Trained on the mean squared error with Adam at TSB-AD's learning rate."""
    inputs = keras.Input(shape=(window, features))
    hidden = inputs
    for count in channels:
        hidden = layers.Conv1D(count, kernel_size, activation="relu")(hidden)
        hidden = layers.MaxPooling1D(2)(hidden)
    over_time = [layers.GlobalAveragePooling1D()(hidden), layers.GlobalMaxPooling1D()(hidden)]
    hidden = layers.Dense(dense_units, activation="relu")(layers.Concatenate()(over_time))
    hidden = layers.Dropout(dropout)(hidden)
    model = keras.Model(inputs, layers.Dense(features)(hidden), name="windowed_cnn")
    model.compile(loss="mse", optimizer=keras.optimizers.Adam(learning_rate))
    return model


def build_lstm_ohlc(window: int = 1440, features: int = OHLC_FEATURES, *, units: int = 50) -> keras.Model:
    """LSTM(units) + Dense(1) on the value and the previous hour's open, close, max and min."""
    if features != OHLC_FEATURES:
        raise ValueError(
            f"lstm_ohlc takes {OHLC_FEATURES} features (value, open, close, max, min), got {features}"
        )
    model = keras.Sequential(
        [keras.Input(shape=(window, features)), layers.LSTM(units), layers.Dense(1)], name="lstm_ohlc"
    )
    return _compiled(model)


def _squeeze_excite(inputs: keras.KerasTensor, ratio: int) -> keras.KerasTensor:
    """Reweight channels by a gate learned from their average over time (Hu et al., 2018)."""
    filters = inputs.shape[-1]
    gate = layers.GlobalAveragePooling1D()(inputs)
    gate = layers.Reshape((1, filters))(gate)
    gate = layers.Dense(filters // ratio, activation="relu", kernel_initializer="he_normal", use_bias=False)(
        gate
    )
    gate = layers.Dense(filters, activation="sigmoid", kernel_initializer="he_normal", use_bias=False)(gate)
    return layers.multiply([inputs, gate])


def build_mlstm_fcn(
    window: int = 1440,
    features: int = OHLC_FEATURES,
    *,
    lstm_units: int = 8,
    lstm_dropout: float = 0.8,
    conv_filters: Sequence[int] = (128, 256, 128),
    kernel_sizes: Sequence[int] = (8, 5, 3),
    squeeze_ratio: int = 16,
) -> keras.Model:
    """MLSTM-FCN as in the seed: Karim et al.'s multivariate LSTM fully convolutional network, regressing.

    An LSTM branch over the masked input, and a fully convolutional branch over the permuted input:
    Conv1D, BatchNormalization and ReLU blocks, each but the last followed by a squeeze-excite block.
    As in the seed, the Permute makes the convolutions run along the features axis with the time steps as
    channels. The 1,024 non-trainable parameters are the BatchNormalization moving means and variances.
    """
    if len(conv_filters) != len(kernel_sizes):
        raise ValueError(f"conv_filters {conv_filters} and kernel_sizes {kernel_sizes} differ in length")
    inputs = keras.Input(shape=(window, features))

    memory = layers.Masking()(inputs)
    memory = layers.LSTM(lstm_units)(memory)
    memory = layers.Dropout(lstm_dropout)(memory)

    convolved = layers.Permute((2, 1))(inputs)
    last_block = len(conv_filters) - 1
    for block, (filters, kernel_size) in enumerate(zip(conv_filters, kernel_sizes, strict=True)):
        convolved = layers.Conv1D(filters, kernel_size, padding="same", kernel_initializer="he_uniform")(
            convolved
        )
        convolved = layers.BatchNormalization()(convolved)
        convolved = layers.Activation("relu")(convolved)
        if block < last_block:
            convolved = _squeeze_excite(convolved, squeeze_ratio)
    convolved = layers.GlobalAveragePooling1D()(convolved)

    outputs = layers.Dense(1)(layers.concatenate([memory, convolved]))
    return _compiled(keras.Model(inputs, outputs, name="mlstm_fcn"))


def build_lstm_autoencoder(
    window: int = 30, features: int = 1, *, units: int = 128, dropout: float = 0.2
) -> keras.Model:
    """LSTM encoder to one vector, repeated over the window, LSTM decoder: reconstructs its input."""
    model = keras.Sequential(
        [
            keras.Input(shape=(window, features)),
            layers.LSTM(units),
            layers.Dropout(dropout),
            layers.RepeatVector(window),
            layers.LSTM(units, return_sequences=True),
            layers.Dropout(dropout),
            layers.TimeDistributed(layers.Dense(features)),
        ],
        name="lstm_autoencoder",
    )
    return _compiled(model)


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "lstm": build_lstm,
    "gru": build_gru,
    "gru_dense": build_gru_dense,
    "cnn1d": build_cnn1d,
    "lstm_ohlc": build_lstm_ohlc,
    "mlstm_fcn": build_mlstm_fcn,
    "lstm_autoencoder": build_lstm_autoencoder,
}
"""Builders by name; every one takes ``(window, features, **hyperparameters)``."""


def parameter_count(model: keras.Model) -> int:
    """All parameters, trainable and non-trainable, as ``model.summary()`` totals them."""
    return int(model.count_params())


def _weight_count(weights: Sequence[keras.Variable]) -> int:
    return sum(math.prod(weight.shape) for weight in weights)


def describe(model: keras.Model) -> str:
    """The layer table of ``model.summary()`` as plain text, ending with a line ``parameters: N``.

    Built from the layers rather than captured from ``model.summary()``, which crops the table to the
    terminal's width (80 columns without a terminal) and cuts long layer names.
    """
    rows = [("Layer (type)", "Output Shape", "Param #")] + [
        (
            f"{layer.name} ({type(layer).__name__})",
            ", ".join(str(tuple(output.shape)) for output in keras.tree.flatten(layer.output)),
            f"{layer.count_params():,}",
        )
        for layer in model.layers
    ]
    name_width = max(len(name) for name, _, _ in rows)
    shape_width = max(len(shape) for _, shape, _ in rows)
    count_width = max(len(count) for _, _, count in rows)
    table = [
        f"{name:<{name_width}}  {shape:<{shape_width}}  {count:>{count_width}}" for name, shape, count in rows
    ]
    return "\n".join(
        [
            f'Model: "{model.name}"',
            *table,
            f"Total params: {parameter_count(model):,}",
            f"Trainable params: {_weight_count(model.trainable_weights):,}",
            f"Non-trainable params: {_weight_count(model.non_trainable_weights):,}",
            f"parameters: {parameter_count(model)}",
        ]
    )
