"""Detectors behind one contract (``base.Detector``), built by name from a registry.

The registry maps names to ``module:Class`` paths and imports a detector's module only when it is
built, so listing detectors never loads heavy frameworks (TensorFlow, XGBoost).
"""

from __future__ import annotations

import importlib
from typing import Any

from passion_tasks.detectors.base import Detector, DetectorError, UnknownDetectorError

__all__ = [
    "Detector",
    "DetectorError",
    "UnknownDetectorError",
    "detector_class",
    "detector_names",
    "make_detector",
]

_REGISTRY: dict[str, str] = {
    "rolling_mad": "passion_tasks.detectors.baselines:RollingMadDetector",
}


def detector_names() -> list[str]:
    """The names ``make_detector`` accepts, sorted."""
    return sorted(_REGISTRY)


def detector_class(name: str) -> type[Detector]:
    """The class registered under ``name``."""
    try:
        module_name, class_name = _REGISTRY[name].split(":")
    except KeyError:
        raise UnknownDetectorError(
            f"unknown detector {name!r}; choose one of {', '.join(detector_names())}"
        ) from None
    return getattr(importlib.import_module(module_name), class_name)


def make_detector(name: str, **params: Any) -> Detector:
    """A new, unfitted detector ``name`` with ``params`` (the others keep their defaults)."""
    cls = detector_class(name)
    accepted = cls._get_param_names()
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise DetectorError(
            f"detector {name!r} has no parameter {', '.join(unknown)}; it takes {', '.join(accepted)}"
        )
    return cls(**params)
