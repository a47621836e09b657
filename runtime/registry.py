"""Backends by name: which exist, which work on this machine and why the others don't."""

from __future__ import annotations

import importlib
import inspect

from vocoder.errors import VocoderError

#: name -> (module, class). Modules import lazily: a missing library only matters when used.
BACKENDS: dict[str, tuple[str, str]] = {
    "onnxruntime": ("vocoder.runtime.ort_backend", "OrtBackend"),
    "torch": ("vocoder.runtime.torch_backend", "TorchBackend"),
    "native": ("vocoder.runtime.native_backend", "NativeBackend"),
    "cuda": ("vocoder.runtime.cuda_backend", "CudaBackend"),
    "triton": ("vocoder.runtime.triton_backend", "TritonBackend"),
    "tensorrt": ("vocoder.runtime.tensorrt_backend", "TensorRTBackend"),
}
DEFAULT_BACKEND = "onnxruntime"


def register(name: str, module: str, cls: str) -> None:
    BACKENDS[name] = (module, cls)


def _class(name: str):
    module, cls = BACKENDS[name]
    return getattr(importlib.import_module(module), cls)


def probe(name: str) -> tuple[bool, str]:
    """(works, why): whether backend ``name`` can run here, and a one-line reason."""
    try:
        cls = _class(name)
    except ImportError as e:
        return False, f"cannot import: {e}"
    check = getattr(cls, "available", None)
    if check is None:
        return True, "ok"
    return check()


def available() -> dict[str, tuple[bool, str]]:
    return {name: probe(name) for name in BACKENDS}


#: Fastest single CPU stream first: live playback wants the compiled loop (1.6x real time
#: on one core for the default model, against 0.3x for one ONNX Runtime call per step).
STREAMING_PREFERENCE = ("native", DEFAULT_BACKEND)


def streaming_backend() -> str:
    """The backend for one live stream on the CPU: the first of STREAMING_PREFERENCE that
    works here."""
    for name in STREAMING_PREFERENCE[:-1]:
        if probe(name)[0]:
            return name
    return STREAMING_PREFERENCE[-1]


def resolve(name: str, live: bool) -> str:
    """A backend name from the command line: "auto" is :func:`streaming_backend` for live
    playback and DEFAULT_BACKEND otherwise (offline synthesis folds, where ONNX Runtime
    is at its best); any other name is itself."""
    if name != "auto":
        return name
    return streaming_backend() if live else DEFAULT_BACKEND


def create(name: str, bundle, **options):
    """Instantiate backend ``name`` for ``bundle``; a clear error if unknown or unusable."""
    if name not in BACKENDS:
        raise VocoderError(f"unknown backend {name!r}; backends: {', '.join(BACKENDS)}")
    ok, why = probe(name)
    if not ok:
        usable = [n for n, (good, _) in available().items() if good]
        raise VocoderError(f"backend {name!r} is not available here: {why}. "
                           f"Available: {', '.join(usable) or 'none'}")
    cls = _class(name)
    takes = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "bundle")]
    unknown = sorted(set(options) - set(takes))
    if unknown:
        raise VocoderError(f"backend {name!r} takes no option {', '.join(map(repr, unknown))}; "
                           f"its options: {', '.join(takes) or 'none'}")
    return cls(bundle, **options)
