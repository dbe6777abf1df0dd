"""The Keras builders reproduce the seed notebooks' layer tables and parameter counts exactly."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from passion_tasks.detectors.architectures import (
    ARCHITECTURES,
    build_lstm,
    build_lstm_autoencoder,
    build_lstm_ohlc,
    build_mlstm_fcn,
    describe,
    parameter_count,
)

LSTM_50_ON_1 = 4 * (50 * (1 + 50) + 50)  # 10,400
LSTM_50_ON_5 = 4 * (50 * (5 + 50) + 50)  # 11,200
GRU_50_ON_1 = 3 * (50 * (1 + 50) + 2 * 50)  # 7,950: reset_after=True keeps two biases per gate
DENSE_50_TO_1 = 51

# (layer type, parameters) in summary order. Where a seed printed model.summary(), copied from it.
SEED_LAYER_TABLES = {
    "lstm": (1440, 1, [("LSTM", LSTM_50_ON_1), ("Dense", DENSE_50_TO_1)]),
    "gru": (1440, 1, [("GRU", GRU_50_ON_1), ("Dense", DENSE_50_TO_1)]),
    "gru_dense": (1440, 1, [("GRU", 7950), ("Dense", 5100), ("Dropout", 0), ("Dense", 101)]),
    "cnn1d": (
        1440,
        1,
        [
            ("Conv1D", 256),
            ("Conv1D", 12352),
            ("Dropout", 0),
            ("MaxPooling1D", 0),
            ("Flatten", 0),
            ("Dense", 4595300),
            ("Dense", 101),
        ],
    ),
    "lstm_ohlc": (1440, 5, [("LSTM", LSTM_50_ON_5), ("Dense", DENSE_50_TO_1)]),
    "mlstm_fcn": (
        1440,
        5,
        [
            ("InputLayer", 0),
            ("Permute", 0),
            ("Conv1D", 1474688),
            ("BatchNormalization", 512),
            ("Activation", 0),
            ("GlobalAveragePooling1D", 0),
            ("Reshape", 0),
            ("Dense", 1024),
            ("Dense", 1024),
            ("Multiply", 0),
            ("Conv1D", 164096),
            ("BatchNormalization", 1024),
            ("Activation", 0),
            ("GlobalAveragePooling1D", 0),
            ("Reshape", 0),
            ("Dense", 4096),
            ("Dense", 4096),
            ("Multiply", 0),
            ("Conv1D", 98432),
            ("Masking", 0),
            ("BatchNormalization", 512),
            ("LSTM", 448),
            ("Activation", 0),
            ("Dropout", 0),
            ("GlobalAveragePooling1D", 0),
            ("Concatenate", 0),
            ("Dense", 137),
        ],
    ),
    "lstm_autoencoder": (
        30,
        1,
        [
            ("LSTM", 66560),
            ("Dropout", 0),
            ("RepeatVector", 0),
            ("LSTM", 131584),
            ("Dropout", 0),
            ("TimeDistributed", 129),
        ],
    ),
}

SEED_TOTALS = {
    "lstm": 10451,
    "gru": 8001,
    "gru_dense": 13151,
    "cnn1d": 4608009,
    "lstm_ohlc": 11251,
    "mlstm_fcn": 1750089,
    "lstm_autoencoder": 198273,
}


def _non_trainable_count(model: keras.Model) -> int:
    return sum(int(np.prod(weight.shape)) for weight in model.non_trainable_weights)


def test_every_architecture_has_a_seed_table() -> None:
    assert sorted(ARCHITECTURES) == sorted(SEED_LAYER_TABLES) == sorted(SEED_TOTALS)


@pytest.mark.parametrize("name", sorted(SEED_LAYER_TABLES))
def test_defaults_reproduce_the_seed_model(name: str) -> None:
    window, features, layer_table = SEED_LAYER_TABLES[name]
    model = ARCHITECTURES[name]()

    assert model.input_shape == (None, window, features)
    assert [(type(layer).__name__, layer.count_params()) for layer in model.layers] == layer_table
    assert parameter_count(model) == SEED_TOTALS[name]
    assert model.loss == "mae"
    assert isinstance(model.optimizer, keras.optimizers.Adam)


def test_mlstm_fcn_non_trainable_parameters_are_the_batch_norm_statistics() -> None:
    model = build_mlstm_fcn(1440, 5)

    assert _non_trainable_count(model) == 1024
    assert parameter_count(model) - _non_trainable_count(model) == 1749065


@pytest.mark.parametrize(
    ("name", "features", "expected_shape"),
    [
        ("lstm", 2, (2, 1)),
        ("gru", 2, (2, 1)),
        ("gru_dense", 2, (2, 1)),
        ("cnn1d", 2, (2, 1)),
        ("lstm_ohlc", 5, (2, 1)),
        ("mlstm_fcn", 5, (2, 1)),
        ("lstm_autoencoder", 3, (2, 12, 3)),
    ],
)
def test_forward_pass_shape(name: str, features: int, expected_shape: tuple[int, ...]) -> None:
    keras.utils.set_random_seed(7)
    batch = np.random.default_rng(7).normal(size=(2, 12, features)).astype("float32")

    prediction = ARCHITECTURES[name](12, features).predict(batch, verbose=0)

    assert prediction.shape == expected_shape
    assert np.isfinite(prediction).all()


def test_hyperparameters_reach_the_layers() -> None:
    assert parameter_count(build_lstm(24, 1, units=10)) == 4 * (10 * (1 + 10) + 10) + 11
    encoder = 4 * (16 * (3 + 16) + 16)
    decoder = 4 * (16 * (16 + 16) + 16)
    assert parameter_count(build_lstm_autoencoder(20, 3, units=16)) == encoder + decoder + 16 * 3 + 3


def test_lstm_ohlc_requires_five_features() -> None:
    with pytest.raises(ValueError, match="takes 5 features"):
        build_lstm_ohlc(1440, 1)


def test_mlstm_fcn_requires_one_kernel_size_per_conv_block() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        build_mlstm_fcn(60, 5, conv_filters=(128, 256), kernel_sizes=(8, 5, 3))


def test_describe_returns_the_layer_table_without_printing(capsys: pytest.CaptureFixture[str]) -> None:
    text = describe(build_lstm_autoencoder())

    lines = text.splitlines()
    assert lines[0] == 'Model: "lstm_autoencoder"'
    assert lines[1].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#"]
    assert [line.split()[-1] for line in lines[2:8]] == ["66,560", "0", "0", "131,584", "0", "129"]
    assert lines[7].split()[1:] == ["(TimeDistributed)", "(None,", "30,", "1)", "129"]
    assert lines[8:] == [
        "Total params: 198,273",
        "Trainable params: 198,273",
        "Non-trainable params: 0",
        "parameters: 198273",
    ]
    assert capsys.readouterr().out == ""


def test_describe_counts_non_trainable_parameters() -> None:
    lines = describe(build_mlstm_fcn(1440, 5)).splitlines()

    assert lines[-3:] == ["Trainable params: 1,749,065", "Non-trainable params: 1,024", "parameters: 1750089"]
