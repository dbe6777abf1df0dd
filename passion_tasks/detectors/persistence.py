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

import io
import json
import tempfile
import zipfile
from collections.abc import Mapping
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
    folder = Path(path)
    try:
        state = (folder / STATE_FILE).read_bytes()
    except FileNotFoundError:
        raise DetectorError(f"{folder} holds no saved detector ({STATE_FILE} is missing)") from None
    document, cls = _saved_class(state, expected, folder)
    arrays = folder / ARRAYS_FILE
    return _restored(document, cls, arrays.read_bytes() if arrays.exists() else None, folder, folder)


def restore_detector(files: Mapping[str, bytes], expected: str | None = None, source: str = "") -> Detector:
    """The fitted detector whose saved folder holds ``files`` (each path relative to the folder): the
    registry's verified artifact files, restored without writing them anywhere. A detector with model
    files of its own (``_model_attributes``: Keras, scikit-learn, members) reads those from a
    temporary folder. ``source`` names the files in errors."""
    source = source or "the saved files"
    if STATE_FILE not in files:
        raise DetectorError(f"{source} hold no saved detector ({STATE_FILE} is missing)")
    document, cls = _saved_class(files[STATE_FILE], expected, source)
    if not cls._model_attributes:
        return _restored(document, cls, files.get(ARRAYS_FILE), None, source)
    with tempfile.TemporaryDirectory(prefix="passion-model-") as tmp:
        for name, data in files.items():
            if not stays_inside(name):
                raise DetectorError(f"{source}: unsafe file name {name!r}")
            target = Path(tmp, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return load_detector(tmp, expected)


def stays_inside(name: str) -> bool:
    """Whether a saved file's relative name stays inside its folder (no empty, ``.`` or ``..`` part)."""
    return not {"", ".", ".."} & set(name.split("/"))


def _saved_class(
    state: bytes, expected: str | None, source: str | Path
) -> tuple[dict[str, Any], type[Detector]]:
    """The saved detector's document (``STATE_FILE``) and its class, checked."""
    from passion_tasks.detectors import detector_class

    where = f"{source}/{STATE_FILE}" if isinstance(source, Path) else f"{STATE_FILE} of {source}"
    try:
        document = json.loads(state)
    except ValueError as error:
        raise DetectorError(f"{where} is not valid JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_VERSION:
        found = document.get("format") if isinstance(document, dict) else None
        raise DetectorError(f"{source}: saved in format {found!r}, expected {FORMAT_VERSION}")
    name = document.get("detector")
    if not isinstance(name, str):
        raise DetectorError(f"{where} does not name its detector")
    if expected is not None and name != expected:
        raise DetectorError(f"{source} holds a saved {name!r} detector where {expected!r} was expected")
    cls = detector_class(name)
    params, state, array_names = document.get("params"), document.get("state"), document.get("arrays")
    if not (isinstance(params, dict) and isinstance(state, dict) and isinstance(array_names, list)):
        raise DetectorError(f"{where}: params, state and arrays must be an object, an object and a list")
    if unknown := sorted(set(params) - set(cls._get_param_names())):
        raise DetectorError(f"{where}: {name} has no parameters {unknown}")
    if unknown := sorted({*state, *array_names} - cls.learned_attributes()):
        raise DetectorError(f"{where}: {name} does not learn {unknown}; refusing to restore them")
    return document, cls


def _restored(
    document: dict[str, Any],
    cls: type[Detector],
    arrays: bytes | None,
    folder: Path | None,
    source: str | Path,
) -> Detector:
    """A ``cls`` with the document's parameters and state, the learned arrays read from ``arrays`` (the
    bytes of ``ARRAYS_FILE``) and its model files from ``folder``."""
    detector = cls(**document["params"])
    for attribute, value in document["state"].items():
        setattr(detector, attribute, _from_json(value))
    if document["arrays"]:
        if arrays is None:
            raise DetectorError(f"{source}: {ARRAYS_FILE} is missing")
        try:
            with np.load(io.BytesIO(arrays), allow_pickle=False) as stored:
                for attribute in document["arrays"]:
                    setattr(detector, attribute, stored[attribute])
        except (KeyError, OSError, ValueError, zipfile.BadZipFile) as error:
            raise DetectorError(f"{source}: {ARRAYS_FILE} cannot be read: {error}") from None
    if folder is not None:
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
