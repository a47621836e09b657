"""What every backend implements, and the state it is handed.

A backend owns compiled code and preallocated buffers; the generation state (ring
buffers, previous class, step counter) is explicit data in :class:`StepState`, created by
the backend, passed into every call, and updated in place there (the ring is written,
never grown), so one backend can serve many utterances one after another. Finished states
go back through :meth:`Backend.release_state`: their rings are reused, zeroed, by the next
state of the same batch size.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from vocoder.bundle import Bundle
from vocoder.config import context_state_size
from vocoder.errors import VocoderError
from vocoder.mulaw import silence_class
from vocoder.runtime.ring import RingLayout

#: The backends that run a context stack's step (``context_pool`` > 0): the CPU ones.
CONTEXT_BACKENDS = ("onnxruntime", "native", "torch")


@dataclass
class StepState:
    """Generation state of B streams.

    ring: (B, sum(d_l), R) backend-native array (numpy, torch, device memory);
    x: (B,) int64 previous class (starts at the class of silence); t: steps taken;
    last: (B,) int64 the input class of the last step taken (-1 before the first), for
    backends that look up layer 0's past tap by class (native); others leave it alone.
    """

    ring: Any
    x: np.ndarray
    t: int = 0
    last: np.ndarray | None = None

    @property
    def batch(self) -> int:
        return int(self.x.shape[0])


class Backend(ABC):
    """Runs ``condition`` and the autoregressive step loop for one bundle."""

    name: ClassVar[str] = "?"
    #: Whether ``condition`` may run on a second thread while ``generate`` runs (true for
    #: backends whose conditioning is a separate ONNX Runtime session on the CPU).
    prefetch_condition: ClassVar[bool] = False

    #: Rings kept per batch size for reuse (see :meth:`release_state`).
    POOLED_RINGS = 2

    def __init__(self, bundle: Bundle):
        check_context_support(self.name, bundle.config)
        self.bundle = bundle
        self.config = bundle.config
        self.layout = RingLayout.of(bundle.config)
        self._rings: dict[int, list] = {}

    # -- conditioning -----------------------------------------------------------------
    @abstractmethod
    def condition(self, features: np.ndarray | None, speaker: np.ndarray | None,
                  gc: np.ndarray | None, start: int, stop: int, batch: int) -> np.ndarray:
        """Gate biases for samples ``[start, stop)`` of the upsampled ``features``.

        features (B, Tf, D) float32 normalised (None without local conditioning);
        speaker (B,) int64 or None; gc (B, gc_channels) float32 or None.
        Returns cond (B, stop - start, L, G) float32, owned by the caller.
        """

    def condition_into(self, features: np.ndarray | None, speaker: np.ndarray | None,
                       gc: np.ndarray | None, start: int, stop: int, out: Any) -> None:
        """:meth:`condition` for ``out.shape[0]`` streams written into ``out`` (B,
        stop - start, L, G), a contiguous slice of a :meth:`cond_buffer`. Backends that
        can write there directly override this and save a copy of the largest tensor of
        the run."""
        out[:] = self.condition(features, speaker, gc, start, stop, out.shape[0])

    def cond_buffer(self, batch: int, steps: int) -> Any:
        """An uninitialised (batch, steps, L, G) float32 buffer that the engine fills chunk
        by chunk (:meth:`condition_into`) and hands to :meth:`generate`: numpy here;
        device memory on GPU backends, so conditioning never makes a host round trip."""
        cfg = self.config
        return np.empty((batch, steps, cfg.layers, cfg.gate_channels), np.float32)

    # -- the context stack ------------------------------------------------------------
    def new_context_state(self, batch: int) -> np.ndarray:
        """Zero context-stack state (B, sum(d_c), Rc) float32 for ``batch`` streams."""
        cfg = self.config
        return np.zeros((batch, context_state_size(cfg), cfg.context_channels), np.float32)

    def context_step(self, block: np.ndarray,
                     state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The context stack's step: block (B, P) int64 input classes ``x[kP:(k+1)P]``,
        state (B, sum(d_c), Rc) float32 -> the gate bias of block k + 1 (B, L*G) float32
        and the new state (new arrays; ``state`` is left alone). Backends that run
        context stacks (:data:`CONTEXT_BACKENDS`) override this."""
        raise VocoderError(f"the {self.name} backend does not run context stacks")

    # -- the step loop ----------------------------------------------------------------
    def stream_chunk(self) -> int:
        """Samples per chunk when streaming, unless the caller says otherwise: 50 ms."""
        return max(1, self.config.sample_rate // 20)

    def new_state(self, batch: int) -> StepState:
        """Fresh state for ``batch`` streams: zero rings, previous class = silence.

        The ring is one this backend made before for this batch size and got back through
        :meth:`release_state` (zeroed: the utterance before leaves nothing behind), or a
        new one: the engine releases its states, so synthesis allocates rings once per
        (batch size, backend) and only resets them between utterances."""
        x = np.full(batch, silence_class(self.config.quantization_channels), dtype=np.int64)
        pool = self._rings.get(batch)
        if pool:
            ring = pool.pop()
            ring[...] = 0
        else:
            ring = self._new_ring(batch)
        return StepState(ring, x, 0, np.full(batch, -1, np.int64))

    def release_state(self, state: StepState) -> None:
        """Hand a finished state's ring back for the next :meth:`new_state` of its batch
        size; ``state`` must not be used afterwards (its ring is set to None)."""
        if state.ring is None:
            return
        pool = self._rings.setdefault(state.batch, [])
        if len(pool) < self.POOLED_RINGS:
            pool.append(state.ring)
        state.ring = None

    def _new_ring(self, batch: int) -> Any:
        """Zeroed ring (B, sum(d_l), R) in the backend's memory: float32 numpy here;
        backends that keep state elsewhere (torch, the GPU) override this."""
        return np.zeros((batch, self.layout.size, self.config.residual_channels), np.float32)

    @abstractmethod
    def generate(self, cond: np.ndarray, state: StepState, u: np.ndarray,
                 temperature: float) -> np.ndarray:
        """Free-running: T steps. cond (B, T, L, G), u (B, T) uniforms in (0, 1).

        Returns classes (B, T) int64 (a new array). ``state`` advances by T steps in place.
        """

    @abstractmethod
    def teacher_force(self, cond: np.ndarray, x: np.ndarray, state: StepState) -> np.ndarray:
        """Teacher-forced: x (B, T) int64 inputs (previous classes). Returns logits
        (B, T, A) float32; ``state``'s ring and step counter advance by T steps in place
        (its ``x`` is left alone: under teacher forcing the caller supplies every input)."""

    def close(self) -> None:
        """Release sessions and device memory (idempotent). Nothing to release here."""
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        """Machine-readable description for benchmarks and ``vocoder doctor``."""
        return {"backend": self.name}


def check_context_support(name: str, config) -> None:
    """Refuse a model with a context stack on a backend that cannot run its step."""
    if config.context_pool and name not in CONTEXT_BACKENDS:
        raise VocoderError(
            f"the {name} backend cannot run a model with a context stack (context_pool = "
            f"{config.context_pool}): its conditioning changes with the generated audio at "
            f"every block; use a CPU backend ({', '.join(CONTEXT_BACKENDS)})")
