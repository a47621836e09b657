"""The architecture as one frozen dataclass, and the one place that knows its geometry.

Everything that needs dilations, the receptive field, the ring-buffer layout or the
conditioning context calls the functions here; nobody recomputes them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from vocoder.errors import VocoderError

CONFIG_VERSION = 1


@dataclass(frozen=True)
class WaveNetConfig:
    """The WaveNet of van den Oord et al. (2016), as a value.

    Dilations double per layer from 1 up to ``dilation_limit`` and then start again at 1;
    they also restart at the beginning of each of the ``stacks`` stacks. The dilated
    convolutions have kernel size 2. ``gate_channels`` (2R by default) is the width of the
    dilated convolution's output; the gated unit halves it.

    Local conditioning (``cond_channels`` > 0) reads frame features at a hop of
    ``prod(upsample_scales)`` samples. With ``cond_hidden`` > 0 a kernel-3 convolution and
    tanh first map them to ``cond_hidden`` channels at the frame rate (a small conditioning
    network, and a bottleneck: the sample-rate upsampling and projection then cost
    ``cond_hidden`` instead of ``cond_channels`` per layer); 0 upsamples the raw features.
    Global conditioning is a speaker id (``n_speakers`` > 0) and/or an arbitrary fixed
    vector of ``gc_channels`` values (e.g. multi-hot music tags); both can be present.

    ``excitation`` = H > 0 adds a sample-rate input to the local conditioning: sine and
    cosine of the first H harmonics of the running F0 phase, zero when unvoiced
    (:mod:`vocoder.excitation`). F0 is read from the features: column ``f0_feature`` is
    log-F0 (natural log of Hz) normalised with ``log_f0_mean``/``log_f0_std``, column
    ``vuv_feature`` the voicing flag. The model's conditioning input then has one more
    column than the features, the phase at each frame's start
    (:attr:`cond_input_channels`).

    A context stack (``context_pool`` = P > 0; the paper's section 2.6) reads the past
    audio at one P-th of the sample rate: each block of P inputs is embedded by a learned
    linear pooling to ``context_channels`` channels, then ``context_layers`` kernel-2
    gated residual layers with dilations 1, 2, 4, ... up to ``context_dilation_limit``
    (restarting after it) run at the block rate, and a projection adds the result to every
    layer's gate bias for the P samples of the next block (:mod:`vocoder.context_stack`). 0
    means no context stack; the other ``context_*`` fields are then ignored.

    ``preemphasis`` = a > 0 makes the classes those of the pre-emphasised waveform
    ``x[t] - a x[t-1]``; synthesis de-emphasises what the model generates, which shapes its
    sampling noise like speech's spectral tilt (:mod:`vocoder.emphasis`). 0 = plain mu-law
    of the waveform.
    """

    sample_rate: int = 16000
    quantization_channels: int = 256
    residual_channels: int = 64
    gate_channels: int = 128
    skip_channels: int = 128
    layers: int = 20
    stacks: int = 2
    dilation_limit: int = 512
    cond_channels: int = 0
    upsample_scales: tuple[int, ...] = field(default=(4, 4, 5))
    cond_hidden: int = 64
    n_speakers: int = 0
    gc_channels: int = 0
    excitation: int = 0
    f0_feature: int = -1
    vuv_feature: int = -1
    log_f0_mean: float = 0.0
    log_f0_std: float = 1.0
    context_pool: int = 0
    context_channels: int = 32
    context_layers: int = 6
    context_dilation_limit: int = 32
    preemphasis: float = 0.0

    def __post_init__(self) -> None:
        # Lists arrive from JSON; keep the dataclass hashable and immutable.
        object.__setattr__(self, "upsample_scales", tuple(self.upsample_scales))
        self._validate()

    def _validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(f"invalid WaveNetConfig: {msg}")

        for name in ("sample_rate", "quantization_channels", "residual_channels",
                     "gate_channels", "skip_channels", "layers", "stacks", "dilation_limit",
                     "cond_channels", "cond_hidden", "n_speakers", "gc_channels",
                     "excitation", "f0_feature", "vuv_feature", "context_pool",
                     "context_channels", "context_layers", "context_dilation_limit"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool),
                 f"{name} must be an int, got {value!r}")
        need(self.sample_rate > 0, f"sample_rate must be > 0, got {self.sample_rate}")
        need(2 <= self.quantization_channels <= 65536,
             f"quantization_channels must be in 2..65536, got {self.quantization_channels}")
        need(self.residual_channels > 0, "residual_channels must be > 0")
        need(self.skip_channels > 0, "skip_channels must be > 0")
        need(self.gate_channels > 0 and self.gate_channels % 2 == 0,
             f"gate_channels must be a positive even number (tanh half + sigmoid half), "
             f"got {self.gate_channels}")
        need(self.layers > 0, f"layers must be > 0, got {self.layers}")
        need(self.stacks > 0, f"stacks must be > 0, got {self.stacks}")
        need(self.layers % self.stacks == 0,
             f"layers ({self.layers}) must be a multiple of stacks ({self.stacks})")
        need(self.dilation_limit >= 1 and self.dilation_limit & (self.dilation_limit - 1) == 0,
             f"dilation_limit must be a power of two, got {self.dilation_limit}")
        need(self.cond_channels >= 0, "cond_channels must be >= 0 (0 = unconditional)")
        need(self.cond_hidden >= 0, "cond_hidden must be >= 0 (0 = upsample raw features)")
        need(self.n_speakers >= 0, "n_speakers must be >= 0 (0 = no speaker embedding)")
        need(self.gc_channels >= 0, "gc_channels must be >= 0 (0 = no global vector)")
        if self.cond_channels > 0:
            need(len(self.upsample_scales) > 0,
                 "upsample_scales must not be empty when cond_channels > 0")
        need(all(isinstance(s, int) and s >= 2 for s in self.upsample_scales),
             f"every upsample scale must be an int >= 2, got {self.upsample_scales}")
        for name in ("log_f0_mean", "log_f0_std", "preemphasis"):
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and not isinstance(value, bool)
                 and math.isfinite(value), f"{name} must be a finite number, got {value!r}")
        need(0.0 <= self.preemphasis < 1.0,
             f"preemphasis must be in [0, 1) (0 = none), got {self.preemphasis}")
        need(self.excitation >= 0, "excitation must be >= 0 (0 = no F0 excitation input)")
        if self.excitation:
            need(self.cond_channels > 0, "excitation needs local conditioning (F0 features)")
            # -1: not located yet (training fills them in from the dataset's names).
            for name in ("f0_feature", "vuv_feature"):
                need(-1 <= getattr(self, name) < self.cond_channels,
                     f"excitation needs {name} in 0..{self.cond_channels - 1} (or -1 until "
                     f"the data gives it), got {getattr(self, name)}")
            need(self.log_f0_std > 0, f"log_f0_std must be > 0, got {self.log_f0_std}")
        need(self.context_pool >= 0,
             f"context_pool must be >= 0 (0 = no context stack), got {self.context_pool}")
        if self.context_pool:
            need(self.context_channels > 0, f"a context stack (context_pool > 0) needs "
                 f"context_channels > 0, got {self.context_channels}")
            need(self.context_layers > 0, f"a context stack (context_pool > 0) needs "
                 f"context_layers > 0, got {self.context_layers}")
            need(self.context_dilation_limit >= 1
                 and self.context_dilation_limit & (self.context_dilation_limit - 1) == 0,
                 f"context_dilation_limit must be a power of two, got "
                 f"{self.context_dilation_limit}")

    # -- derived geometry -------------------------------------------------------------
    @property
    def hop_length(self) -> int:
        """Samples per feature frame: the product of the upsampling scales."""
        return math.prod(self.upsample_scales) if self.upsample_scales else 1

    @property
    def cond_input_channels(self) -> int:
        """Columns of the model's conditioning input: the features, plus the frame phase
        when the model has an F0 excitation input."""
        return self.cond_channels + (1 if self.excitation else 0)

    @property
    def layers_per_stack(self) -> int:
        return self.layers // self.stacks

    @property
    def dilations(self) -> list[int]:
        return dilations(self)

    @property
    def max_dilation(self) -> int:
        return max(dilations(self))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["upsample_scales"] = list(self.upsample_scales)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WaveNetConfig:
        return dataclass_from_dict(cls, d, "model config")

    def replace(self, **changes: Any) -> WaveNetConfig:
        return dataclasses.replace(self, **changes)


def dataclass_from_dict(cls, d: Any, what: str):
    """``cls(**d)`` for a config read from JSON, with a VocoderError naming unknown keys
    and invalid values instead of a TypeError."""
    if not isinstance(d, dict):
        raise VocoderError(f"{what} must be a JSON object, got {type(d).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise VocoderError(f"unknown {what} keys {unknown}; known: {sorted(known)}")
    try:
        return cls(**d)
    except (TypeError, ValueError) as e:
        raise VocoderError(f"invalid {what}: {e}") from None


def _doubling(n: int, limit: int, restart: int) -> list[int]:
    """n dilations 1, 2, 4, ... up to ``limit`` (a power of two), then again from 1, and
    from 1 at every ``restart``-th layer too."""
    cycle = int(math.log2(limit)) + 1
    return [2 ** ((i % restart) % cycle) for i in range(n)]


def dilations(cfg: WaveNetConfig) -> list[int]:
    """Dilation d_l of each layer: 1, 2, 4, ... up to the limit, restarting at each stack."""
    return _doubling(cfg.layers, cfg.dilation_limit, cfg.layers_per_stack)


def receptive_field(cfg: WaveNetConfig) -> int:
    """Receptive field in samples: how many inputs ``x[t-rf+1..t]`` the logits at t see
    (at most, over t).

    The input ``x[t]`` is the class of the *previous* sample, so the prediction of sample
    t depends on the ``rf`` samples before it. Each kernel-2 layer of dilation d adds d;
    the input embedding (a 1x1 convolution on the one-hot) adds nothing.

    With a context stack the two stacks chain: the logits at t read the gate biases of
    samples back to ``t - (D - 1)`` (D = sum of the main dilations; the first layer's
    dilation is 1), and the bias of block j is computed from the input blocks
    ``j - rfc .. j - 1`` (rfc = :func:`context_receptive_field`). At worst that reaches
    ``P * (rfc + 1) - 1 + D - 1`` inputs back: ``P * (rfc + 1) + (1 + D) - 2`` in all.
    """
    main = 1 + sum(dilations(cfg))
    if not cfg.context_pool:
        return main
    return cfg.context_pool * (context_receptive_field(cfg) + 1) + main - 2


def context_dilations(cfg: WaveNetConfig) -> list[int]:
    """Dilation of each context layer (in blocks): 1, 2, 4, ... up to
    ``context_dilation_limit``, then again from 1; [] without a context stack."""
    if not cfg.context_pool:
        return []
    return _doubling(cfg.context_layers, cfg.context_dilation_limit, cfg.context_layers)


def context_receptive_field(cfg: WaveNetConfig) -> int:
    """How many input blocks the context bias of a block depends on: the bias of sample
    block j is computed from input blocks ``j - rfc .. j - 1`` (0 without a context
    stack)."""
    if not cfg.context_pool:
        return 0
    return 1 + sum(context_dilations(cfg))


def context_state_size(cfg: WaveNetConfig) -> int:
    """Rows of the context stack's step state ``(B, sum(d_c), Rc)``: each context layer's
    last d_c inputs, oldest first."""
    return sum(context_dilations(cfg))


def ring_offsets(cfg: WaveNetConfig) -> list[int]:
    """Start of each layer's d_l slots in the ring array ``(B, sum(d_l), R)``."""
    offs, acc = [], 0
    for d in dilations(cfg):
        offs.append(acc)
        acc += d
    return offs


def ring_size(cfg: WaveNetConfig) -> int:
    """Number of slots in the ring array: ``sum(d_l)``."""
    return sum(dilations(cfg))


def ring_slots(cfg: WaveNetConfig, t: int) -> list[int]:
    """Ring slot of every layer at step t: ``offset_l + t mod d_l``.

    The pattern repeats every ``max_dilation`` steps because every d_l divides it.
    """
    return [o + t % d for o, d in zip(ring_offsets(cfg), dilations(cfg))]


def cond_context_frames(cfg: WaveNetConfig) -> int:
    """Frames of context each side that make chunked conditioning equal the whole.

    Every transposed convolution (kernel 2s, stride s, centred crop) lets one output
    depend on at most two neighbouring inputs plus the crop shift: under two input samples
    of that level, which is at most two frames. Summed over levels, this bound is safe;
    the kernel-3 frame convolution (``cond_hidden``) adds one frame.
    """
    if not cfg.cond_channels:
        return 0
    return 2 * len(cfg.upsample_scales) + (1 if cfg.cond_hidden else 0)


def flops_per_sample(cfg: WaveNetConfig) -> int:
    """Multiply-adds x 2 of one autoregressive step (conditioning excluded).

    Per layer: the two taps of the dilated conv (R -> G each), the skip 1x1 (G/2 -> S) and
    the residual 1x1 (G/2 -> R, absent in the last layer); then the output head. A context
    stack adds its cost per block divided by P: the pooling (P -> Rc), per layer the two
    taps (Rc -> 2Rc each) and the residual (Rc -> Rc), and the projection (Rc -> L*G).
    """
    r, g, s, a = cfg.residual_channels, cfg.gate_channels, cfg.skip_channels, \
        cfg.quantization_channels
    per_layer = 2 * (2 * r * g) + 2 * (g // 2) * s + 2 * (g // 2) * r
    main = cfg.layers * per_layer - 2 * (g // 2) * r + 2 * s * s + 2 * s * a
    if not cfg.context_pool:
        return main
    p, rc = cfg.context_pool, cfg.context_channels
    per_block = (2 * p * rc + cfg.context_layers * (2 * (2 * rc) * (2 * rc) + 2 * rc * rc)
                 + 2 * rc * cfg.layers * g)
    return main + round(per_block / p)


PRESETS: dict[str, WaveNetConfig] = {
    # What the benchmarks and the demo model use: 20 layers in 2 stacks of 1..512.
    "default": WaveNetConfig(),
    # The paper's 30 layers in 3 stacks of 1..512.
    "paper": WaveNetConfig(layers=30, stacks=3, residual_channels=64, gate_channels=128,
                           skip_channels=256),
    # For tests and smoke runs: small enough to train a few steps in seconds.
    "tiny": WaveNetConfig(residual_channels=8, gate_channels=16, skip_channels=16, layers=6,
                          stacks=2, dilation_limit=512, upsample_scales=(2, 2)),
}
