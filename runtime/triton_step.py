"""The whole WaveNet step as one Triton kernel: ring gather, every layer, the output head,
the ring scatter and the sampling in a single launch.

With the torch step module, the loop runs 238 tensor ops (kernels, on a GPU) per step
for the default model, a dozen per layer plus gather, scatter and sampling (counted on
the CPU device). Each costs the GPU some microseconds even inside a CUDA graph, so the
step is bound by their count, not by its 1.2 MFLOP. Here one program owns
``block_batch`` batch rows and runs the layers in sequence on register tiles, reading
the pre-transposed, zero-padded weights from global memory, where they stay in the GPU's
L2 (2.3 MB in float32 for the default model).

Two entry points share the kernel:

- :meth:`TritonStep.__call__` is the plain :class:`~vocoder.runtime.gpu_loop.StepExecutor`
  contract: ``past`` in, ``logits`` and ``present`` out;
- :meth:`TritonStep.fused_step` reads ``past`` straight from the ring rows of this step,
  writes ``present`` back into them and samples (or takes the argmax) in the same launch,
  which is what :class:`~vocoder.runtime.gpu_loop.PeriodLoop` uses (one launch per step).

On a CPU device the kernel runs in Triton's interpreter (numpy; ``TRITON_INTERPRET=1``, see
:func:`interpreting`): slow, but it is the same kernel source, which is how its
arithmetic is tested on machines without a GPU.
Sampling is the reference inverse CDF (:mod:`vocoder.runtime.sampling`) in float64.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import torch

from vocoder.errors import VocoderError
from vocoder.runtime.gpu_loop import GREEDY, SAMPLE, TEACHER, StepExecutor

#: Kernel modes: write logits only, or also the argmax class, or also a sampled class.
_LOGITS, _ARGMAX, _SAMPLE = 0, 1, 2
_MODES = {TEACHER: _LOGITS, GREEDY: _ARGMAX, SAMPLE: _SAMPLE}
#: tl.dot's smallest tile side on NVIDIA GPUs: every padded size is at least this.
MIN_DOT = 16
#: Columns of the output layers computed per tile (bounds the weight tiles in registers).
HEAD_BLOCK = 64
#: Most classes the kernel samples from: a whole row of float64 probabilities per batch
#: row is held in registers (256, the mu-law default, is 2 KB per row).
MAX_CLASSES = 1024


def triton_status() -> tuple[bool, str]:
    """(usable, why) for the ``triton`` package alone (no GPU check)."""
    try:
        import triton
    except Exception as e:  # ImportError, or a broken install
        return False, (f"Triton is not installed ({type(e).__name__}: {e}); "
                       "`pip install triton` (or the gpu extra: `pip install -e .[gpu]`)")
    return True, f"Triton {triton.__version__}"


def _pad(n: int) -> int:
    """The next power of two, at least MIN_DOT (tl.arange and tl.dot need both)."""
    return max(MIN_DOT, 1 << (int(n) - 1).bit_length())


def interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter (``TRITON_INTERPRET=1``).

    Triton reads the variable when it is imported (its own library functions are
    decorated then), so it must be set before the first ``import triton`` of the process:
    one process either compiles for the GPU or interprets on the CPU, never both.
    """
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on",
                                                                        "yes")


@functools.cache
def _kernel():
    """The jitted kernel (compiled, or interpreted under TRITON_INTERPRET=1)."""
    import triton

    from vocoder.runtime.triton_kernel import wavenet_step

    return triton.jit(wavenet_step)


def padded_sizes(cfg) -> dict[str, int]:
    """The kernel's tile sizes for a config: RP, GHP, SP (residual, half gate, skip channels
    padded to powers of two >= MIN_DOT) and AP (classes, at least one HEAD_BLOCK)."""
    return {"RP": _pad(cfg.residual_channels), "GHP": _pad(cfg.gate_channels // 2),
            "SP": _pad(cfg.skip_channels),
            "AP": max(_pad(cfg.quantization_channels), HEAD_BLOCK)}


def kernel_constants(cfg, dtype: torch.dtype, block_batch: int, mode: int,
                     dot_f32: bool = False) -> dict[str, Any]:
    """The kernel's compile-time arguments (``tl.constexpr``) for a config and precision.

    float32 dots use "tf32x3" (three TF32 tensor-core products per fp32 product, about
    fp32's accuracy): "ieee" makes Triton multiply on the FMA units with operand tiles
    that spill 18.9 KB per thread, against 72 bytes (ptxas, sm_90, default model,
    Triton 3.9, ``python -m bench.triton_aot``).
    """
    sizes = padded_sizes(cfg)
    return {"R": cfg.residual_channels, "GH": cfg.gate_channels // 2,
            "A": cfg.quantization_channels, **sizes, "AB": HEAD_BLOCK,
            "HB": min(HEAD_BLOCK, sizes["SP"]), "BB": block_batch, "MODE": mode,
            "PREC": "tf32x3" if dtype == torch.float32 else "tf32", "DOT_F32": dot_f32}


def pack_weights(model: torch.nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The step's weights as the kernel reads them: transposed to (in, out), split into the
    tanh (f) and sigmoid (g) halves, zero-padded to powers of two, on the model's device.

    Zero padding keeps padded channels exactly zero through every layer, so the kernel
    needs masks only on activations. Biases stay float32; weights are in ``dtype``.
    Shapes: emb (A, RP); wpf/wpg/wcf/wcg (L, RP, GHP); ws (L, GHP, SP); bs (SP,) (the
    sum of the layers' skip biases); wr (L, GHP, RP); br (L, RP) (zeros for the last
    layer, which has no residual); w1 (SP, SP); b1 (SP,); w2 (SP, AP); b2 (AP,).
    """
    from vocoder.export.weights import step_weights

    cfg = model.cfg
    L, R, G, S, A = (cfg.layers, cfg.residual_channels, cfg.gate_channels,
                     cfg.skip_channels, cfg.quantization_channels)
    GH = G // 2
    RP, GHP, SP, AP = padded_sizes(cfg).values()
    dev = model.embed.weight.device
    # The one per-step layout (export.weights), zero-padded and split for the kernel.
    sw = step_weights(cfg, {k: v.detach().to("cpu", torch.float32).numpy()
                            for k, v in model.state_dict().items()})
    t = lambda a: torch.from_numpy(a)

    def z(*shape):
        return torch.zeros(shape, dtype=torch.float32)

    emb = z(A, RP)
    emb[:, :R] = t(sw.embed)
    wp, wc = z(L, 2, RP, GHP), z(L, 2, RP, GHP)
    ws, wr, br = z(L, GHP, SP), z(L, GHP, RP), z(L, RP)
    for half in range(2):
        wp[:, half, :R, :GH] = t(sw.w_past[:, :, half * GH:(half + 1) * GH])
        wc[:, half, :R, :GH] = t(sw.w_cur[:, :, half * GH:(half + 1) * GH])
    ws[:, :GH, :S] = t(sw.w_skip).view(L, GH, S)
    wr[:L - 1, :GH, :R] = t(sw.w_res)
    br[:L - 1, :R] = t(sw.b_res)
    bs = z(SP)
    bs[:S] = t(sw.b_skip)
    w1, b1 = z(SP, SP), z(SP)
    w1[:S, :S], b1[:S] = t(sw.head1), t(sw.b_head1)
    w2, b2 = z(SP, AP), z(AP)
    w2[:S, :A], b2[:A] = t(sw.head2), t(sw.b_head2)
    cast = lambda a: a.to(dev, dtype).contiguous()
    keep = lambda a: a.to(dev)  # biases stay float32
    return {"emb": cast(emb), "wpf": cast(wp[:, 0]), "wpg": cast(wp[:, 1]),
            "wcf": cast(wc[:, 0]), "wcg": cast(wc[:, 1]), "ws": cast(ws), "bs": keep(bs),
            "wr": cast(wr), "br": keep(br), "w1": cast(w1), "b1": keep(b1), "w2": cast(w2),
            "b2": keep(b2)}


class TritonStep(StepExecutor):
    """The step as one Triton kernel, weights in fp32, fp16 or bf16 (accumulation float32,
    sampling float64), rings and conditioning in the same dtype as the weights.

    model: the float32 :class:`~vocoder.model.WaveNet` on ``device`` (only its weights are
    read, once). block_batch: batch rows per program (>= 16, a power of two); num_warps:
    warps per program. On a CPU device the kernel runs in Triton's interpreter.

    Output buffers (``logits``, ``present`` of :meth:`__call__`) are owned here, one set
    per batch size, and overwritten by the next call with that batch size.
    """

    name = "triton"
    fused = True

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype, device: torch.device,
                 block_batch: int = MIN_DOT, num_warps: int = 8):
        ok, why = triton_status()
        if not ok:
            raise VocoderError(why)
        if block_batch < MIN_DOT or block_batch & (block_batch - 1):
            raise VocoderError(f"block_batch must be a power of two >= {MIN_DOT}, "
                               f"got {block_batch}")
        cfg = model.cfg
        if cfg.quantization_channels > MAX_CLASSES:
            raise VocoderError(f"the triton step samples from at most {MAX_CLASSES} classes, "
                               f"this model has {cfg.quantization_channels}; use the cuda "
                               "backend")
        self.io_dtype = dtype
        self.device = device
        self.dims = (cfg.layers, cfg.residual_channels, cfg.gate_channels // 2,
                     cfg.quantization_channels)
        self.w = pack_weights(model, dtype)
        self.block_batch, self.num_warps = block_batch, num_warps
        if device.type != "cuda" and not interpreting():
            raise VocoderError(f"the Triton step on {device} runs only in Triton's interpreter"
                               ": set TRITON_INTERPRET=1 before Python imports triton")
        self.kernel = _kernel()
        dot_f32 = interpreting() and dtype == torch.bfloat16
        self._constants = {m: kernel_constants(cfg, dtype, block_batch, m, dot_f32)
                           for m in _MODES.values()}
        self._plain: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._scratch: dict[int, torch.Tensor] = {}
        self._hid: dict[int, torch.Tensor] = {}
        self._rows = torch.arange(cfg.layers, dtype=torch.int64, device=device)
        self._inv_t = torch.ones((), dtype=torch.float64, device=device)
        self._u = torch.zeros(1, dtype=torch.float32, device=device)  # unread; not a null

    def prepare(self, batch: int) -> None:
        if batch not in self._scratch:
            L, R, _, A = self.dims
            dev = self.device
            self._scratch[batch] = torch.empty((batch, A), dtype=torch.float32, device=dev)
            self._hid[batch] = torch.empty((batch, self.w["w1"].shape[0]), dtype=torch.float32,
                                           device=dev)
            self._plain[batch] = (torch.empty((batch, A), dtype=torch.float32, device=dev),
                                  torch.empty((batch, L, R), dtype=self.io_dtype, device=dev))

    def _launch(self, x, cond_t, src, dst, rows, state_bstride, u, inv_t, logits, classes,
                mode: int) -> None:
        L, _, GH, _ = self.dims
        w = self.w
        B = int(x.shape[0])
        grid = ((B + self.block_batch - 1) // self.block_batch,)
        self.kernel[grid](
            x, cond_t, L * 2 * GH, src, dst, rows, state_bstride, u, inv_t, logits, classes,
            self._hid[B],
            w["emb"], w["wpf"], w["wpg"], w["wcf"], w["wcg"], w["ws"], w["bs"], w["wr"],
            w["br"], w["w1"], w["b1"], w["w2"], w["b2"], B, L,
            **self._constants[mode], num_warps=self.num_warps)

    def __call__(self, x, cond_t, past):
        B = int(x.shape[0])
        self.prepare(B)
        logits, present = self._plain[B]
        L, R, _, _ = self.dims
        self._launch(x, cond_t.contiguous(), past.contiguous(), present, self._rows, L * R,
                     self._u, self._inv_t, logits, x, _LOGITS)
        return logits, present

    def fused_step(self, ring: torch.Tensor, rows: torch.Tensor, x: torch.Tensor,
                   cond_t: torch.Tensor, u: torch.Tensor, inv_t: torch.Tensor, mode: str,
                   out: torch.Tensor) -> None:
        """One step on the ring in place: read ``past`` from ``ring[:, rows]``, write
        ``present`` there, and put the result in ``out``.

        ring (B, S, R) io_dtype, contiguous; rows (L,) int64 this step's ring rows;
        x (B,) int64; cond_t (B, L, G) io_dtype, contiguous; u (B,) float32;
        inv_t () float64; out: classes (B,) int64 (modes sample, greedy) or logits
        (B, A) float32 (teacher). No host synchronisation: safe in graph capture.
        """
        B = int(x.shape[0])
        self.prepare(B)
        kmode = _MODES[mode]
        logits = out if kmode == _LOGITS else self._scratch[B]
        classes = x if kmode == _LOGITS else out  # not written in logits mode
        self._launch(x, cond_t, ring, ring, rows, ring.shape[1] * ring.shape[2], u, inv_t,
                     logits, classes, kmode)

    def close(self) -> None:
        self._plain.clear()
        self._scratch.clear()
        self._hid.clear()

    def describe(self) -> dict[str, Any]:
        import triton

        return {**super().describe(), "triton": triton.__version__,
                "block_batch": self.block_batch, "num_warps": self.num_warps,
                "interpreted": interpreting()}
