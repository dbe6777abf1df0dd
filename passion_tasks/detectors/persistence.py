"""Saving a fitted detector to a folder and loading it back, without unpickling anything.

A saved detector is a folder:

- ``detector.json``: the registry name, the ``__init__`` parameters and the JSON-able learned state;
- ``arrays.npz``: the learned numpy arrays, read back with ``allow_pickle=False``;
- the model files a detector writes itself through ``_save_model`` (``model.keras`` for Keras,
  ``model.skops`` for scikit-learn, XGBoost's own JSON), for the attributes it lists in
  ``_model_attributes``.

The registry checks every file's sha256 against its signed manifest before a folder reaches
``load_detector``. Loading trusts the folder no further than the code allows: the detector must be the
one the caller expects, its parameters those of its class's ``__init__``, and its state only the
attributes its class declares (``Detector.learned_attributes``), so a stored file can never set an
attribute of its own choosing (a private one such as a list of trusted types, say).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from passion_tasks.detectors.base import Detector, DetectorError

FORMAT_VERSION = 1
STATE_FILE = "detector.json"
ARRAYS_FILE = "arrays.npz"


def save_detector(detector: Detector, path: str | Path) -> Path:
    """Write a fitted ``detector`` into the folder ``path`` (created if needed); returns it."""
    if not hasattr(detector, "threshold_"):
        raise DetectorError(f"{detector.name}: not fitted yet; fit before saving")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    state, arrays = {}, {}
    for name, value in _learned_state(detector).items():
        if isinstance(value, np.ndarray) and value.dtype != object:
            arrays[name] = value
        else:
            state[name] = _to_json(detector, name, value)
    if arrays:
        np.savez(folder / ARRAYS_FILE, **arrays)
    detector._save_model(folder)
    document = {
        "format": FORMAT_VERSION,
        "detector": detector.name,
        "params": detector.get_params(deep=False),
        "state": state,
        "arrays": sorted(arrays),
    }
    (folder / STATE_FILE).write_text(json.dumps(document, indent=1, sort_keys=True))
    return folder


def load_detector(path: str | Path, expected: str | None = None) -> Detector:
    """The fitted detector saved in the folder ``path``; ``expected`` is the registry name it must have."""
    from passion_tasks.detectors import detector_class

    folder = Path(path)
    try:
        document = json.loads((folder / STATE_FILE).read_text())
    except FileNotFoundError:
        raise DetectorError(f"{folder} holds no saved detector ({STATE_FILE} is missing)") from None
    except ValueError as error:
        raise DetectorError(f"{folder / STATE_FILE} is not valid JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_VERSION:
        found = document.get("format") if isinstance(document, dict) else None
        raise DetectorError(f"{folder}: saved in format {found!r}, expected {FORMAT_VERSION}")
    name = document.get("detector")
    if not isinstance(name, str):
        raise DetectorError(f"{folder / STATE_FILE} does not name its detector")
    if expected is not None and name != expected:
        raise DetectorError(f"{folder} holds a saved {name!r} detector where {expected!r} was expected")
    cls = detector_class(name)
    params, state, array_names = document.get("params"), document.get("state"), document.get("arrays")
    if not (isinstance(params, dict) and isinstance(state, dict) and isinstance(array_names, list)):
        raise DetectorError(
            f"{folder / STATE_FILE}: params, state and arrays must be an object, an object and a list"
        )
    if unknown := sorted(set(params) - set(cls._get_param_names())):
        raise DetectorError(f"{folder / STATE_FILE}: {name} has no parameters {unknown}")
    if unknown := sorted({*state, *array_names} - cls.learned_attributes()):
        raise DetectorError(
            f"{folder / STATE_FILE}: {name} does not learn {unknown}; refusing to restore them"
        )
    detector = cls(**params)
    for attribute, value in state.items():
        setattr(detector, attribute, _from_json(value))
    if array_names:
        with np.load(folder / ARRAYS_FILE, allow_pickle=False) as arrays:
            for attribute in array_names:
                setattr(detector, attribute, arrays[attribute])
    detector._load_model(folder)
    return detector


def _learned_state(detector: Detector) -> dict[str, Any]:
    state = {
        name: value
        for name, value in vars(detector).items()
        if name.endswith("_") and not name.startswith("_") and name not in detector._model_attributes
    }
    # Saving what loading would refuse would make a model that cannot be used: fail at training instead.
    if undeclared := sorted(set(state) - detector.learned_attributes()):
        raise DetectorError(
            f"{detector.name}: learned attributes {undeclared} are not in {type(detector).__name__}"
            "._learned_attributes; declare them so that a saved model can restore them"
        )
    return state


def _to_json(detector: Detector, name: str, value: Any) -> Any:
    if isinstance(value, pd.Timedelta):
        return {"__timedelta_ns__": int(value.value)}
    if isinstance(value, np.ndarray):
        return {"__strings__": [str(v) for v in value]}
    if isinstance(value, np.generic):
        return value.item()
    try:
        json.dumps(value)
    except TypeError:
        raise DetectorError(
            f"{detector.name}: learned attribute {name} ({type(value).__name__}) cannot be saved as JSON; "
            "list it in _model_attributes and write it in _save_model"
        ) from None
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and "__timedelta_ns__" in value:
        return pd.Timedelta(value["__timedelta_ns__"], unit="ns")
    if isinstance(value, dict) and "__strings__" in value:
        return np.asarray(value["__strings__"], dtype=object)
    return value
