"""``vocoder export``: write ``condition.onnx`` and ``step.onnx`` (and ``context_step.onnx``
for a model with a context stack) into a bundle, check them against torch, and record the
weights they came from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from vocoder.bundle import (
    CONDITION_ONNX,
    CONTEXT_ONNX,
    STEP_ONNX,
    Bundle,
    load_bundle,
    update_export_record,
)
from vocoder.config import context_state_size
from vocoder.errors import VocoderError
from vocoder.export.graphs import DEFAULT_OPSET, condition_graph, context_step_graph, step_graph
from vocoder.export.weights import cond_weights, context_weights, step_weights
from vocoder.fileio import atomic_path

#: Graphs older exports wrote that no backend reads: removed by a new export.
RETIRED = ("step_sample.onnx",)
#: float32 export must match torch this closely on random inputs.
TOLERANCE = 1e-4


@dataclass(frozen=True)
class ExportReport:
    files: dict[str, Path]
    max_abs_diff: dict[str, float]
    opset: int


def build_graphs(bundle: Bundle, opset: int = DEFAULT_OPSET,
                 batch: int | str = "B") -> dict[str, onnx.ModelProto]:
    cfg = bundle.config
    meta = {"weights_sha256": bundle.weights_sha256, "vocoder_export_version": "1"}
    sw = step_weights(cfg, bundle.weights)
    graphs = {
        CONDITION_ONNX: condition_graph(cfg, cond_weights(cfg, bundle.weights), opset=opset,
                                        meta=meta),
        STEP_ONNX: step_graph(cfg, sw, batch=batch, opset=opset, meta=meta),
    }
    if cfg.context_pool:
        graphs[CONTEXT_ONNX] = context_step_graph(cfg, context_weights(cfg, bundle.weights),
                                                  batch=batch, opset=opset, meta=meta)
    return graphs


def compare_with_torch(bundle: Bundle, paths: dict[str, Path], batch: int = 2,
                       n_frames: int = 7, seed: int = 0) -> dict[str, float]:
    """Max abs difference of each ONNX graph against the torch model on random inputs."""
    import onnxruntime as ort
    import torch

    cfg = bundle.config
    model = bundle.build_model()
    rng = np.random.default_rng(seed)
    B, L, R, G = batch, cfg.layers, cfg.residual_channels, cfg.gate_channels
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = lambda p: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
    diffs = {}
    # condition: whole utterance, and a crop
    feed, targs = {}, {}
    if cfg.cond_channels:
        feed["features"] = rng.standard_normal((B, n_frames, cfg.cond_input_channels),
                                               np.float32)
        if cfg.excitation:  # voicing flags and start phases as the runtime gives them
            feed["features"][..., cfg.vuv_feature] = rng.integers(0, 2, (B, n_frames))
            feed["features"][..., -1] = rng.uniform(0, 2 * np.pi, (B, n_frames))
        targs["features"] = torch.from_numpy(feed["features"])
    if cfg.n_speakers:
        feed["speaker"] = rng.integers(0, cfg.n_speakers, B).astype(np.int64)
        targs["speaker"] = torch.from_numpy(feed["speaker"])
    if cfg.gc_channels:
        feed["gc"] = rng.standard_normal((B, cfg.gc_channels), np.float32)
        targs["gc"] = torch.from_numpy(feed["gc"])
    n = n_frames * cfg.hop_length
    with torch.no_grad():
        ref = model.condition(targs.get("features"), targs.get("speaker"), n_samples=n,
                              gc=targs.get("gc"), batch=B).numpy()
    lo, hi = n // 3, n - n // 4
    got = sess(paths[CONDITION_ONNX]).run(["cond"], {**feed, "crop": np.array([lo, hi])})[0]
    got = np.broadcast_to(got, (B, *got.shape[1:]))
    diffs[CONDITION_ONNX] = float(np.abs(got - ref[:, lo:hi]).max())
    # step: random state
    x = rng.integers(0, cfg.quantization_channels, B).astype(np.int64)
    cond_t = rng.standard_normal((B, L, G), np.float32)
    past = rng.standard_normal((B, L, R), np.float32)
    with torch.no_grad():
        lg, pr = model.step(torch.from_numpy(x), torch.from_numpy(cond_t),
                            torch.from_numpy(past))
    out = sess(paths[STEP_ONNX]).run(["logits", "present"],
                                     {"x": x, "cond_t": cond_t, "past": past})
    diffs[STEP_ONNX] = float(max(np.abs(out[0] - lg.numpy()).max(),
                                 np.abs(out[1] - pr.numpy()).max()))
    if cfg.context_pool:  # context step: random classes and state
        block = rng.integers(0, cfg.quantization_channels,
                             (B, cfg.context_pool)).astype(np.int64)
        state = rng.standard_normal((B, context_state_size(cfg), cfg.context_channels),
                                    np.float32)
        with torch.no_grad():
            bias, new = model.context_step(torch.from_numpy(block), torch.from_numpy(state))
        out = sess(paths[CONTEXT_ONNX]).run(["bias", "new_state"],
                                            {"block": block, "state": state})
        diffs[CONTEXT_ONNX] = float(max(np.abs(out[0] - bias.numpy()).max(),
                                        np.abs(out[1] - new.numpy()).max()))
    return diffs


def export_bundle(path: str | Path, opset: int = DEFAULT_OPSET, batches: tuple[int, ...] = (1,),
                  static: bool = False, check: bool = True) -> ExportReport:
    """Export the bundle at ``path``. Files are checked (``onnx.checker`` and against
    torch) under temporary names and renamed only when every check passes.

    ``static`` fixes the step graphs' batch dimension to the single size in ``batches``.
    """
    path = Path(path)
    bundle = load_bundle(path)
    if static and len(batches) != 1:
        raise VocoderError(f"--static needs exactly one batch size, got {list(batches)}")
    if any(b < 1 for b in batches):
        raise VocoderError(f"batch sizes must be >= 1, got {list(batches)}")
    graphs = build_graphs(bundle, opset, batch=batches[0] if static else "B")
    with _atomic_many(path, list(graphs)) as tmps:
        for name, model in graphs.items():
            onnx.save(model, str(tmps[name]))
            onnx.checker.check_model(str(tmps[name]))
        diffs = compare_with_torch(bundle, tmps, batch=batches[0] if static else 2) \
            if check else {}
        bad = {k: v for k, v in diffs.items() if not v < TOLERANCE}
        if bad:
            raise VocoderError(f"export differs from torch beyond {TOLERANCE}: {bad}; "
                               "nothing was written")
    for name in RETIRED + (() if bundle.config.context_pool else (CONTEXT_ONNX,)):
        (path / name).unlink(missing_ok=True)
    update_export_record(path, {"onnx": {
        "weights_sha256": bundle.weights_sha256, "opset": opset, "batches": list(batches),
        "static": static, "max_abs_diff": diffs, "files": list(graphs)}})
    return ExportReport({k: path / k for k in graphs}, diffs, opset)


class _atomic_many:
    """Temporary paths for several files; all renamed into place only on success."""

    def __init__(self, folder: Path, names: list[str]):
        self.folder, self.names, self.ctx = folder, names, []

    def __enter__(self) -> dict[str, Path]:
        out = {}
        for n in self.names:
            cm = atomic_path(self.folder / n)
            out[n] = cm.__enter__()
            self.ctx.append(cm)
        return out

    def __exit__(self, *exc):
        for cm in self.ctx:
            cm.__exit__(*exc)
        return False
