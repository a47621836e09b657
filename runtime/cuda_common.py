"""What the GPU backends share: whether torch sees a CUDA GPU, device names, precisions."""

from __future__ import annotations

import torch

from vocoder.errors import VocoderError

#: Precisions of the ``cuda`` backend's step (conditioning is always computed in float32).
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def cuda_status() -> tuple[bool, str]:
    """(usable, why): whether torch sees a CUDA GPU, and which."""
    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            return False, (f"torch {torch.__version__} is a CPU-only build: install a CUDA "
                           "build of torch on a machine with an NVIDIA GPU")
        return False, (f"no CUDA GPU visible to torch {torch.__version__} (built for CUDA "
                       f"{torch.version.cuda}); check the driver and CUDA_VISIBLE_DEVICES")
    return True, (f"{torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}, "
                  f"torch {torch.__version__}")


def with_gpu(library: tuple[bool, str], name: str) -> tuple[bool, str]:
    """(usable, why) for a backend that needs a CUDA GPU and a library whose own
    (usable, why) is ``library``: the GPU's reason first, since it matters most."""
    ok, why = cuda_status()
    ok_lib, why_lib = library
    if not ok:
        return False, why + ("" if ok_lib else f"; {name} is not installed either")
    return ok_lib, f"{why_lib} on {why}" if ok_lib else why_lib


def parse_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise VocoderError(f"device must be 'cuda', 'cuda:N' or 'cpu', got {device!r} "
                           f"({e})") from None
    if dev.type == "cuda":
        ok, why = cuda_status()
        if not ok:
            raise VocoderError(f"device {device!r}: {why}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise VocoderError(f"device {device!r}: only {torch.cuda.device_count()} "
                               "CUDA device(s) visible")
    elif dev.type != "cpu":
        raise VocoderError(f"device must be 'cuda', 'cuda:N' or 'cpu', got {device!r}")
    return dev
