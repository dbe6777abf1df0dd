"""Saving a fitted detector to a folder and loading it back, without unpickling anything.

A saved detector is a folder:

- ``detector.json``: the registry name, the ``__init__`` parameters and the JSON-able learned state;
- ``arrays.npz``: the learned numpy arrays, read back with ``allow_pickle=False``;
- the model files a detector writes itself through ``_save_model`` (``model.keras`` for Keras,
  ``model.skops`` for scikit-learn, XGBoost's own JSON), for the attributes it lists in
  ``_model_attributes``.

The registry checks every file's sha256 against its manifest before a folder reaches
``load_detector``, so only files Passion wrote are ever loaded.
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


def load_detector(path: str | Path) -> Detector:
    """The fitted detector saved in the folder ``path``."""
    from passion_tasks.detectors import detector_class

    folder = Path(path)
    try:
        document = json.loads((folder / STATE_FILE).read_text())
    except FileNotFoundError:
        raise DetectorError(f"{folder} holds no saved detector ({STATE_FILE} is missing)") from None
    if document.get("format") != FORMAT_VERSION:
        raise DetectorError(
            f"{folder}: saved in format {document.get('format')!r}, expected {FORMAT_VERSION}"
        )
    detector = detector_class(document["detector"])(**document["params"])
    for name, value in document["state"].items():
        setattr(detector, name, _from_json(value))
    if document["arrays"]:
        with np.load(folder / ARRAYS_FILE, allow_pickle=False) as arrays:
            for name in document["arrays"]:
                setattr(detector, name, arrays[name])
    detector._load_model(folder)
    return detector


def _learned_state(detector: Detector) -> dict[str, Any]:
    return {
        name: value
        for name, value in vars(detector).items()
        if name.endswith("_") and not name.startswith("_") and name not in detector._model_attributes
    }


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
