"""The ``tensorrt`` backend: ``step.onnx`` as TensorRT engines in the device-resident,
graph-captured loop (:mod:`vocoder.runtime.device_backend`). Device memory, the loop
and the conditioning are torch's (a CUDA build of torch is required)."""

from __future__ import annotations

from vocoder.bundle import STEP_ONNX
from vocoder.errors import VocoderError
from vocoder.runtime.cuda_common import parse_device, with_gpu
from vocoder.runtime.device_backend import DeviceLoopBackend
from vocoder.runtime.gpu_loop import StepExecutor


class TensorRTBackend(DeviceLoopBackend):
    """``step.onnx`` as TensorRT engines (fp32 or fp16) in the same graph-captured loop.

    Engines are cached in ``BUNDLE/engines/`` (see :mod:`vocoder.runtime.trt_engine`);
    :meth:`build_engines` builds them ahead of time (``vocoder export --engine``), and any
    missing one is built on first use of its batch size. Conditioning runs in torch on
    the same GPU.
    """

    name = "tensorrt"

    @staticmethod
    def available() -> tuple[bool, str]:
        from vocoder.runtime.trt_engine import tensorrt_status

        return with_gpu(tensorrt_status(), "TensorRT")

    def __init__(self, bundle, precision: str = "fp16", graphs: bool | None = None,
                 device: str = "cuda", threads: int | None = None):
        from vocoder.runtime.trt_engine import require_tensorrt

        require_tensorrt()  # the clearest error first: without it nothing here can run
        if parse_device(device).type != "cuda":
            raise VocoderError(f"the tensorrt backend needs a CUDA device, got {device!r}")
        super().__init__(bundle, device=device, precision=precision, graphs=graphs,
                         threads=threads)

    def _check_precision(self, precision: str) -> None:
        from vocoder.runtime.trt_engine import PRECISIONS

        if precision not in PRECISIONS:
            raise VocoderError(f"the tensorrt backend runs {' or '.join(PRECISIONS)}, "
                               f"got precision={precision!r}")

    def _executor(self) -> StepExecutor:
        import onnx

        from vocoder.runtime.trt_engine import ENGINES_DIR, TensorRTStep

        path = self.bundle.exported(STEP_ONNX)[STEP_ONNX]
        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False)
                .metadata_props}
        self.bundle.check_fresh(path, meta.get("weights_sha256"))
        cfg = self.config
        return TensorRTStep(path, self.bundle.path / ENGINES_DIR, self.precision, cfg.layers,
                            cfg.residual_channels, cfg.gate_channels,
                            cfg.quantization_channels, self.device)

    def build_engines(self, batches) -> list:
        """Build (or find cached) engines for these batch sizes; returns their paths."""
        return [self.executor.build(int(b)) for b in batches]
