"""The thin TensorRT part: ``step.onnx`` -> an engine per batch size, cached on disk,
run with ``execute_async_v3`` on tensors owned by torch.

Written against the TensorRT 10.x / 11.x Python API (``tensorrt`` >= 10). TensorRT 11
removed the weak-typing precision flags (``BuilderFlag.FP16``), so precision lives in the
graph on both versions: the network is created strongly typed and, for fp16,
:func:`onnx_fp16` first turns the float32 ``step.onnx`` into one that computes in fp16
but keeps float32 inputs and outputs (so the ring buffers, conditioning and logits stay
float32 whatever the engine's precision).

Engines live in ``BUNDLE/engines/`` under a name made of everything that makes one
engine differ from another (:func:`engine_key`): the step graph's sha256, the TensorRT
version, the GPU, the precision and the batch size.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import torch

from vocoder.errors import VocoderError
from vocoder.fileio import sha256_file, write_bytes_atomic
from vocoder.runtime.gpu_loop import StepExecutor, aligned

log = logging.getLogger(__name__)

ENGINES_DIR = "engines"
PRECISIONS = ("fp32", "fp16")
#: Builder scratch memory; the step is tiny, this is generous.
WORKSPACE_BYTES = 1 << 30
_IO = ("x", "cond_t", "past", "logits", "present")


def require_tensorrt():
    """The ``tensorrt`` module (>= 10), or a :class:`VocoderError` that says what to do."""
    try:
        import tensorrt as trt
    except Exception as e:  # ImportError, or a broken install raising OSError etc.
        raise VocoderError(
            f"TensorRT is not installed ({type(e).__name__}: {e}). The tensorrt backend "
            "needs NVIDIA's tensorrt Python package 10.x or 11.x (`pip install tensorrt`, "
            "which fetches the libraries from NVIDIA's index) and an NVIDIA GPU; the cuda "
            "backend needs neither TensorRT nor an export") from None
    major = _major(getattr(trt, "__version__", "0"))
    if major < 10:
        raise VocoderError(f"TensorRT {trt.__version__} is too old: the tensorrt backend "
                           "uses the TensorRT 10/11 API (execute_async_v3, strong typing)")
    return trt


def tensorrt_status() -> tuple[bool, str]:
    """(usable, why) for the ``tensorrt`` Python package alone (no GPU check)."""
    try:
        trt = require_tensorrt()
    except VocoderError as e:
        return False, str(e)
    return True, f"TensorRT {trt.__version__}"


def _major(version: str) -> int:
    m = re.match(r"\d+", version)
    return int(m.group()) if m else 0


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "unknown"


def engine_key(onnx_sha256: str, trt_version: str, gpu_name: str, precision: str,
               batch: int) -> str:
    """File stem of one engine: ``step-<onnx sha256[:16]>-trt<version>-<gpu>-<precision>-b<B>``.

    Any change of graph, TensorRT, GPU model, precision or batch size gives another name,
    so a stale engine is never loaded (it is rebuilt beside the old one).
    """
    if precision not in PRECISIONS:
        raise VocoderError(f"TensorRT precision must be one of {PRECISIONS}, got {precision!r}")
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise VocoderError(f"batch size must be an int >= 1, got {batch!r}")
    if not re.fullmatch(r"[0-9a-f]{16,}", onnx_sha256):
        raise VocoderError(f"onnx_sha256 must be a hex digest, got {onnx_sha256!r}")
    return (f"step-{onnx_sha256[:16]}-trt{_slug(trt_version)}-{_slug(gpu_name)}-"
            f"{precision}-b{int(batch)}")


def onnx_fp16(model):
    """A copy of an ONNX model that computes in float16 but keeps float32 inputs and
    outputs: float initializers and Cast targets become float16, each float32 input gets
    a Cast to float16 behind it and each float32 output a Cast back in front of it."""
    import onnx
    from onnx import AttributeProto, TensorProto, helper, numpy_helper

    F, H = TensorProto.FLOAT, TensorProto.FLOAT16
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for init in g.initializer:
        if init.data_type == F:
            init.CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(init).astype(np.float16), init.name))
    for node in g.node:
        for a in node.attribute:
            if node.op_type == "Cast" and a.name == "to" and a.i == F:
                a.i = H
            elif a.type == AttributeProto.TENSOR and a.t.data_type == F:
                a.t.CopyFrom(numpy_helper.from_array(
                    numpy_helper.to_array(a.t).astype(np.float16), a.t.name))
    head, tail, rename = [], [], {}
    for inp in g.input:
        if inp.type.tensor_type.elem_type == F:
            rename[inp.name] = f"{inp.name}__fp16"
            head.append(helper.make_node("Cast", [inp.name], [rename[inp.name]],
                                         name=f"{inp.name}__to_fp16", to=H))
    outs = {o.name for o in g.output if o.type.tensor_type.elem_type == F}
    for name in outs:
        rename[name] = f"{name}__fp16"
        tail.append(helper.make_node("Cast", [rename[name]], [name], name=f"{name}__to_fp32",
                                     to=F))
    for node in g.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) if n in outs else n for n in node.output]
    nodes = head + list(g.node) + tail
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]  # their float32 types are stale; nothing needs them
    return m


def build_engine(trt, onnx_bytes: bytes, shapes: dict[str, tuple[int, ...]], precision: str,
                 logger, workspace: int = WORKSPACE_BYTES) -> bytes:
    """Serialised engine for a strongly typed network parsed from ``onnx_bytes``, with one
    optimisation profile fixing every input to ``shapes``."""
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise VocoderError(f"TensorRT cannot parse step.onnx: {errors}")
    for i in range(network.num_inputs):
        t = network.get_input(i)
        want = shapes.get(t.name)
        if want is None:
            raise VocoderError(f"step.onnx has an unexpected input {t.name!r}")
        fixed = [d for d, w in zip(t.shape, want) if d >= 0 and d != w]
        if fixed:
            raise VocoderError(f"step.onnx input {t.name!r} has static shape {tuple(t.shape)}"
                               f", batch {want[0]} needs {want}; re-export without --static")
    config = builder.create_builder_config()
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # fp32 means fp32: keep the 1e-4 parity
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    profile = builder.create_optimization_profile()
    for name, shape in shapes.items():
        profile.set_shape(name, shape, shape, shape)
    config.add_optimization_profile(profile)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise VocoderError("TensorRT failed to build the step engine (see its log above)")
    return bytes(blob)


class TensorRTStep(StepExecutor):
    """``step.onnx`` as TensorRT engines, one per batch size, inputs and outputs float32.

    onnx_path: the bundle's step.onnx; engine_dir: where engines are cached (created on
    demand). The engine's outputs are buffers owned here, one pair per batch size,
    overwritten by the next call of that batch size.
    """

    name = "tensorrt"
    io_dtype = torch.float32

    def __init__(self, onnx_path: str | Path, engine_dir: str | Path, precision: str,
                 layers: int, residual: int, gate: int, classes: int,
                 device: torch.device, gpu_name: str | None = None):
        if precision not in PRECISIONS:
            raise VocoderError(f"the tensorrt backend runs {' or '.join(PRECISIONS)}, "
                               f"got {precision!r}")
        self.trt = require_tensorrt()
        self.onnx_path, self.engine_dir = Path(onnx_path), Path(engine_dir)
        self.precision, self.device = precision, device
        self.dims = (layers, residual, gate, classes)
        self.gpu_name = gpu_name or torch.cuda.get_device_name(device)
        self.onnx_sha256 = sha256_file(self.onnx_path)
        self.logger = self.trt.Logger(self.trt.Logger.WARNING)
        self._runtime = None
        self._ctx: dict[int, tuple] = {}

    def shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        L, R, G, _ = self.dims
        return {"x": (batch,), "cond_t": (batch, L, G), "past": (batch, L, R)}

    def engine_path(self, batch: int) -> Path:
        key = engine_key(self.onnx_sha256, self.trt.__version__, self.gpu_name, self.precision,
                         batch)
        return self.engine_dir / f"{key}.engine"

    def build(self, batch: int, force: bool = False) -> Path:
        """The cached engine for ``batch``, built (minutes) and written atomically if absent."""
        path = self.engine_path(batch)
        if path.is_file() and not force:
            return path
        import onnx

        model = onnx.load(str(self.onnx_path))
        if self.precision == "fp16":
            model = onnx_fp16(model)
        log.info("building TensorRT %s engine for batch %d (once; cached at %s)",
                 self.precision, batch, path)
        blob = build_engine(self.trt, model.SerializeToString(), self.shapes(batch),
                            self.precision, self.logger)
        write_bytes_atomic(path, blob)
        return path

    def _load(self, batch: int):
        trt = self.trt
        if self._runtime is None:
            self._runtime = trt.Runtime(self.logger)
        path = self.build(batch)
        engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:  # truncated or from an incompatible build: rebuild once
            log.warning("cannot deserialise %s; rebuilding it", path)
            engine = self._runtime.deserialize_cuda_engine(
                self.build(batch, force=True).read_bytes())
        if engine is None:
            raise VocoderError(f"TensorRT cannot load the engine it just built at {path}")
        names = {engine.get_tensor_name(i) for i in range(engine.num_io_tensors)}
        if names != set(_IO):
            raise VocoderError(f"{path}: engine tensors {sorted(names)}, expected "
                               f"{sorted(_IO)}; is {self.onnx_path} a step graph?")
        want = {"x": trt.DataType.INT64}
        for name in _IO:
            dt = engine.get_tensor_dtype(name)
            if dt != want.get(name, trt.DataType.FLOAT):
                raise VocoderError(f"{path}: tensor {name!r} is {dt}, the runtime binds "
                                   f"{'int64' if name == 'x' else 'float32'}")
        return engine

    def prepare(self, batch: int) -> None:
        if batch in self._ctx:
            return
        engine = self._load(batch)
        ctx = engine.create_execution_context()
        for name, shape in self.shapes(batch).items():
            if not ctx.set_input_shape(name, shape):
                raise VocoderError(f"TensorRT rejected shape {shape} for input {name!r}")
        L, R, _, A = self.dims
        logits = aligned((batch, A), torch.float32, self.device)
        present = aligned((batch, L, R), torch.float32, self.device)
        ctx.set_tensor_address("logits", logits.data_ptr())
        ctx.set_tensor_address("present", present.data_ptr())
        self._ctx[batch] = (engine, ctx, logits, present)

    def __call__(self, x, cond_t, past):
        _, ctx, logits, present = self._ctx[int(x.shape[0])]
        # Host-side calls only: under graph capture they fix the addresses the recorded
        # kernels read, which are the loop's static buffers.
        ctx.set_tensor_address("x", x.data_ptr())
        ctx.set_tensor_address("cond_t", cond_t.data_ptr())
        ctx.set_tensor_address("past", past.data_ptr())
        stream = torch.cuda.current_stream(self.device).cuda_stream \
            if self.device.type == "cuda" else 0  # CPU: only for tests with a stand-in
        if not ctx.execute_async_v3(stream):
            raise VocoderError("TensorRT execute_async_v3 failed (see its log above)")
        return logits, present

    def close(self) -> None:
        self._ctx.clear()
        self._runtime = None

    def describe(self):
        return {**super().describe(), "tensorrt": self.trt.__version__,
                "precision": self.precision, "gpu": self.gpu_name}
