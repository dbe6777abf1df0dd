"""Detectors behind one contract (``base.Detector``), built by name from a registry.

The registry maps names to ``module:Class`` paths and imports a detector's module only when it is
built, so listing detectors never loads heavy frameworks (TensorFlow, XGBoost), and the contract
itself (scikit-learn, pandas) is imported on first use: a DAG file listing the names stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from passion_tasks.detectors.base import Detector

_LAZY = {
    "Detector": "passion_tasks.detectors.base",
    "DetectorError": "passion_tasks.detectors.base",
    "UnknownDetectorError": "passion_tasks.detectors.base",
    "load_detector": "passion_tasks.detectors.persistence",
    "restore_detector": "passion_tasks.detectors.persistence",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Detector",
    "DetectorError",
    "UnknownDetectorError",
    "detector_class",
    "detector_names",
    "load_detector",
    "make_detector",
    "restore_detector",
    "uses_keras",
]

_REGISTRY: dict[str, str] = {
    # Keras models of the seed notebooks
    "lstm": "passion_tasks.detectors.keras_detectors:LstmDetector",
    "gru": "passion_tasks.detectors.keras_detectors:GruDetector",
    "gru_dense": "passion_tasks.detectors.keras_detectors:GruDenseDetector",
    "cnn1d": "passion_tasks.detectors.keras_detectors:Cnn1dDetector",
    "lstm_ohlc": "passion_tasks.detectors.keras_detectors:LstmOhlcDetector",
    "mlstm_fcn": "passion_tasks.detectors.keras_detectors:MlstmFcnDetector",
    "lstm_autoencoder": "passion_tasks.detectors.keras_detectors:LstmAutoencoderDetector",
    # Keras, multivariate methods of TSB-AD's best
    "usad": "passion_tasks.detectors.usad:UsadDetector",
    "omni_anomaly": "passion_tasks.detectors.omni_anomaly:OmniAnomalyDetector",
    "windowed_cnn": "passion_tasks.detectors.keras_detectors:WindowedCnnDetector",
    # scikit-learn and XGBoost
    "isolation_forest": "passion_tasks.detectors.sklearn_detectors:IsolationForestDetector",
    "one_class_svm": "passion_tasks.detectors.sklearn_detectors:OneClassSvmDetector",
    "elliptic_envelope": "passion_tasks.detectors.sklearn_detectors:EllipticEnvelopeDetector",
    "kmeans": "passion_tasks.detectors.sklearn_detectors:KMeansDetector",
    "pca": "passion_tasks.detectors.sklearn_detectors:PcaDetector",
    "knn": "passion_tasks.detectors.sklearn_detectors:KnnDetector",
    "xgboost": "passion_tasks.detectors.supervised:XGBoostDetector",
    "fusion": "passion_tasks.detectors.fusion:FusionDetector",
    "likelihood": "passion_tasks.detectors.likelihood:AnomalyLikelihoodDetector",
    # TSB-AD's best simple univariate methods, causal
    "sub_pca": "passion_tasks.detectors.subsequences:SubPcaDetector",
    "kmeans_ad": "passion_tasks.detectors.subsequences:KMeansAdDetector",
    "poly": "passion_tasks.detectors.subsequences:PolyDetector",
    # count-aware CDN statistics, and a series that never moved
    "rate": "passion_tasks.detectors.counts:RateDetector",
    "percentile": "passion_tasks.detectors.counts:PercentileDetector",
    "count": "passion_tasks.detectors.counts:CountDetector",
    "size": "passion_tasks.detectors.counts:SizeDetector",
    "geometric_mean": "passion_tasks.detectors.counts:GeometricMeanDetector",
    "constant": "passion_tasks.detectors.counts:ConstantDetector",
    # a server metric against its daily profile
    "profile": "passion_tasks.detectors.profiles:ProfileDetector",
    # baselines
    "rolling_mad": "passion_tasks.detectors.baselines:RollingMadDetector",
    "windowed_gaussian": "passion_tasks.detectors.baselines:WindowedGaussianDetector",
    "seasonal_naive": "passion_tasks.detectors.baselines:SeasonalNaiveDetector",
}


#: The modules whose detectors are Keras networks: they import TensorFlow.
_KERAS_MODULES = (
    "passion_tasks.detectors.keras_detectors",
    "passion_tasks.detectors.usad",
    "passion_tasks.detectors.omni_anomaly",
)


def detector_names() -> list[str]:
    """The names ``make_detector`` accepts, sorted."""
    return sorted(_REGISTRY)


def detector_class(name: str) -> type[Detector]:
    """The class registered under ``name``."""
    from passion_tasks.detectors.base import UnknownDetectorError

    try:
        module_name, class_name = _REGISTRY[name].split(":")
    except KeyError:
        raise UnknownDetectorError(
            f"unknown detector {name!r}; choose one of {', '.join(detector_names())}"
        ) from None
    return getattr(importlib.import_module(module_name), class_name)


def uses_keras(name: str) -> bool:
    """Whether detector ``name`` is a Keras network (known without importing TensorFlow)."""
    return _REGISTRY.get(name, "").partition(":")[0] in _KERAS_MODULES


def make_detector(name: str, **params: Any) -> Detector:
    """A new, unfitted detector ``name`` with ``params`` (the others keep their defaults)."""
    from passion_tasks.detectors.base import DetectorError

    cls = detector_class(name)
    accepted = cls._get_param_names()
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise DetectorError(
            f"detector {name!r} has no parameter {', '.join(unknown)}; it takes {', '.join(accepted)}"
        )
    return cls(**params)
