"""Hand-built ONNX graphs for the step contract (lean: few, large nodes).

A per-step graph driven from Python pays about a microsecond per node, so the step graph
fuses what it can: both dilated taps of all layers' *past* inputs in one batched MatMul
with the conditioning added once, each layer's current tap as one Gemm whose C input is
that precomputed bias, the skip connections of all layers as one Gemm over the
concatenated gate outputs. Only ops TensorRT's ONNX parser supports are used
(:data:`ALLOWED_OPS`).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vocoder.config import WaveNetConfig, context_dilations, context_state_size
from vocoder.export.weights import CondWeights, ContextWeights, StepWeights

#: Ops the graphs may use: all supported by TensorRT's ONNX parser (10.x).
ALLOWED_OPS = frozenset({
    "Gather", "Transpose", "MatMul", "Gemm", "Add", "Mul", "Sub", "Tanh", "Sigmoid", "Relu",
    "Concat", "Split", "Reshape", "Unsqueeze", "ConvTranspose", "Slice", "Expand",
    "Identity", "Conv", "Exp", "Sin", "Cos",
})

DEFAULT_OPSET = 17


class _G:
    """Tiny graph-building helper: unique names, initializers, nodes."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, arr: np.ndarray, base: str = "w") -> str:
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def op(self, op: str, inputs: list[str], base: str | None = None, n_out: int = 1,
           **attrs) -> str | list[str]:
        outs = [self.name(base or op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.name(op), **attrs))
        return outs[0] if n_out == 1 else outs


def _model(g: _G, inputs, outputs, name: str, opset: int, meta: dict[str, str]) -> onnx.ModelProto:
    graph = helper.make_graph(g.nodes, name, inputs, outputs, initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="vocoder.export")
    model.ir_version = min(model.ir_version, 9)  # readable by older runtimes/parsers
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    return model


def step_graph(cfg: WaveNetConfig, w: StepWeights, *, batch: int | str = "B",
               opset: int = DEFAULT_OPSET,
               meta: dict[str, str] | None = None) -> onnx.ModelProto:
    """The step graph: x (B,) int64, cond_t (B, L, G), past (B, L, R) ->
    logits (B, A), present (B, L, R). Sampling is the runtime's (one reference sampler)."""
    L, R, G, A = cfg.layers, cfg.residual_channels, cfg.gate_channels, \
        cfg.quantization_channels
    H = G // 2
    g = _G()
    # All layers' past tap plus conditioning at once: (L, B, G).
    past_t = g.op("Transpose", ["past"], perm=[1, 0, 2])
    pre = g.op("MatMul", [past_t, g.const(w.w_past, "w_past")])
    pre = g.op("Add", [pre, g.op("Transpose", ["cond_t"], perm=[1, 0, 2])], base="pre")
    h = g.op("Gather", [g.const(w.embed, "embed"), "x"], axis=0, base="h")
    presents, zs = [], []
    for i in range(L):
        presents.append(h)
        pre_i = g.op("Gather", [pre, g.const(np.array(i, dtype=np.int64), "idx")], axis=0)
        a = g.op("Gemm", [h, g.const(w.w_cur[i], "w_cur"), pre_i], base="a")
        ta, sa = g.op("Split", [a, g.const(np.array([H, H], np.int64), "split")], axis=1,
                      n_out=2)
        z = g.op("Mul", [g.op("Tanh", [ta]), g.op("Sigmoid", [sa])], base="z")
        zs.append(z)
        if i < L - 1:
            r = g.op("Gemm", [z, g.const(w.w_res[i], "w_res"), g.const(w.b_res[i], "b_res")])
            h = g.op("Add", [h, r], base="h")
    zcat = g.op("Concat", zs, axis=1) if L > 1 else zs[0]
    skip = g.op("Gemm", [zcat, g.const(w.w_skip, "w_skip"), g.const(w.b_skip, "b_skip")])
    out = g.op("Relu", [skip])
    out = g.op("Relu", [g.op("Gemm", [out, g.const(w.head1, "head1"),
                                      g.const(w.b_head1, "b_head1")])])
    g.op("Gemm", [out, g.const(w.head2, "head2"), g.const(w.b_head2, "b_head2")])
    g.nodes[-1].output[0] = "logits"
    pcat = g.op("Concat", presents, axis=1) if L > 1 else presents[0]
    g.nodes.append(helper.make_node(
        "Reshape", [pcat, g.const(np.array([-1, L, R], np.int64), "shape")], ["present"],
        name="present_reshape"))
    inputs = [helper.make_tensor_value_info("x", TensorProto.INT64, [batch]),
              helper.make_tensor_value_info("cond_t", TensorProto.FLOAT, [batch, L, G]),
              helper.make_tensor_value_info("past", TensorProto.FLOAT, [batch, L, R])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, A]),
               helper.make_tensor_value_info("present", TensorProto.FLOAT, [batch, L, R])]
    return _model(g, inputs, outputs, "wavenet_step", opset, meta or {})


def context_step_graph(cfg: WaveNetConfig, w: ContextWeights, *, batch: int | str = "B",
                       opset: int = DEFAULT_OPSET,
                       meta: dict[str, str] | None = None) -> onnx.ModelProto:
    """The context stack's step (:meth:`vocoder.context_stack.ContextStack.step`):
    block (B, P) int64, state (B, sum(d_c), Rc) -> bias (B, L*G), new_state (same shape
    as state). Each layer's register in the state is its last d_c inputs, oldest first:
    the oldest is the layer's past tap, and the new register drops it and appends this
    block's input."""
    P, Rc, LG = cfg.context_pool, cfg.context_channels, cfg.layers * cfg.gate_channels
    S = context_state_size(cfg)
    g = _G()
    vals = g.op("Gather", [g.const(w.values, "values"), "block"], axis=0)  # (B, P)
    h = g.op("Gemm", [vals, g.const(w.embed, "embed"), g.const(w.b_embed, "b_embed")])
    rows, off = [], 0
    i64 = lambda v: np.array(v, np.int64)
    for i, d in enumerate(context_dilations(cfg)):
        oldest = g.op("Gather", ["state", g.const(i64(off), "row")], axis=1)  # (B, Rc)
        if d > 1:
            rows.append(g.op("Slice", ["state", g.const(i64([off + 1]), "s"),
                                       g.const(i64([off + d]), "e"),
                                       g.const(i64([1]), "ax")]))
        rows.append(g.op("Unsqueeze", [h, g.const(i64([1]), "ax")]))
        pre = g.op("Gemm", [oldest, g.const(w.w_past[i], "w_past"),
                            g.const(w.b_taps[i], "b_taps")])
        a = g.op("Gemm", [h, g.const(w.w_cur[i], "w_cur"), pre], base="a")
        ta, sa = g.op("Split", [a, g.const(i64([Rc, Rc]), "split")], axis=1, n_out=2)
        z = g.op("Mul", [g.op("Tanh", [ta]), g.op("Sigmoid", [sa])], base="z")
        h = g.op("Add", [h, g.op("Gemm", [z, g.const(w.w_res[i], "w_res"),
                                          g.const(w.b_res[i], "b_res")])], base="h")
        off += d
    g.nodes.append(helper.make_node("MatMul", [h, g.const(w.proj, "proj")], ["bias"],
                                    name="bias_proj"))
    g.nodes.append(helper.make_node("Concat", rows, ["new_state"], name="new_state",
                                    axis=1))
    inputs = [helper.make_tensor_value_info("block", TensorProto.INT64, [batch, P]),
              helper.make_tensor_value_info("state", TensorProto.FLOAT, [batch, S, Rc])]
    outputs = [helper.make_tensor_value_info("bias", TensorProto.FLOAT, [batch, LG]),
               helper.make_tensor_value_info("new_state", TensorProto.FLOAT,
                                             [batch, S, Rc])]
    return _model(g, inputs, outputs, "wavenet_context_step", opset, meta or {})


def condition_graph(cfg: WaveNetConfig, w: CondWeights, *, opset: int = DEFAULT_OPSET,
                    meta: dict[str, str] | None = None) -> onnx.ModelProto:
    """features (B, Tf, D) [+ speaker (B,) int64] [+ gc (B, C) float32] + crop (2,) int64
    -> cond (B, crop[1] - crop[0], L, G): samples ``crop[0]..crop[1]`` of the upsampled
    utterance. Without local conditioning, ``features`` is absent and the constant bias is
    expanded to the crop's length."""
    L, G, D = cfg.layers, cfg.gate_channels, cfg.cond_channels
    g = _G()
    inputs = []
    bias = g.const(w.bias.reshape(1, 1, L * G), "gate_bias")  # (1, 1, L*G)
    if w.speaker is not None:
        inputs.append(helper.make_tensor_value_info("speaker", TensorProto.INT64, ["B"]))
        spk = g.op("Gather", [g.const(w.speaker[:, None, :], "speaker_table"), "speaker"],
                   axis=0)  # (B, 1, L*G)
        bias = g.op("Add", [bias, spk])
    if w.gc is not None:
        inputs.append(helper.make_tensor_value_info("gc", TensorProto.FLOAT,
                                                    ["B", cfg.gc_channels]))
        gcb = g.op("Unsqueeze", [g.op("MatMul", ["gc", g.const(w.gc, "gc_proj")]),
                                 g.const(np.array([1], np.int64), "ax")])
        bias = g.op("Add", [bias, gcb])
    inputs.append(helper.make_tensor_value_info("crop", TensorProto.INT64, [2]))
    start = g.op("Slice", ["crop", g.const(np.array([0], np.int64), "s"),
                           g.const(np.array([1], np.int64), "e")])
    stop = g.op("Slice", ["crop", g.const(np.array([1], np.int64), "s"),
                          g.const(np.array([2], np.int64), "e")])
    if D:
        inputs.insert(0, helper.make_tensor_value_info("features", TensorProto.FLOAT,
                                                       ["B", "Tf", cfg.cond_input_channels]))
        feats = "features"
        if cfg.excitation:
            feats = g.op("Slice", ["features", g.const(np.array([0], np.int64), "s"),
                                   g.const(np.array([D], np.int64), "e"),
                                   g.const(np.array([2], np.int64), "ax")])
        c = g.op("Transpose", [feats], perm=[0, 2, 1])  # (B, D, Tf)
        if w.cond_in is not None:
            c = g.op("Conv", [c, g.const(w.cond_in[0], "in_w"), g.const(w.cond_in[1], "in_b")],
                     kernel_shape=[3], pads=[1, 1])
            c = g.op("Tanh", [c])  # (B, C, Tf)
        for weight, b, s in w.upsample:
            # pads crop the (n+1)*s full output to n*s starting at s//2, as in the model.
            c = g.op("ConvTranspose", [c, g.const(weight, "up_w"), g.const(b, "up_b")],
                     kernel_shape=[2 * s], strides=[s], pads=[s // 2, s - s // 2])
        if cfg.excitation:
            c = g.op("Concat", [c, _excitation(g, cfg)], axis=1)  # (B, C + 2H, T)
        c = g.op("Slice", [c, start, stop, g.const(np.array([2], np.int64), "ax")])
        c = g.op("MatMul", [g.op("Transpose", [c], perm=[0, 2, 1]), g.const(w.proj, "proj")])
        # Reshape to (B, n, L, G) before the bias, so that the last node (the Add) writes
        # the output: a Reshape that produces a graph output is a 10 MB/s-of-audio copy.
        c = g.op("Reshape", [c, g.const(np.array([0, -1, L, G], np.int64), "shape")])
        g.op("Add", [c, g.op("Reshape", [bias, g.const(np.array([0, 1, L, G], np.int64),
                                                          "shape")])])
        g.nodes[-1].output[0] = "cond"
    else:
        n = g.op("Sub", [stop, start])
        shape = g.op("Concat", [g.const(np.array([1], np.int64), "one"), n,
                                g.const(np.array([1], np.int64), "one")], axis=0)
        c = g.op("Expand", [bias, shape])  # (B|1, n, L*G)
        g.nodes.append(helper.make_node(
            "Reshape", [c, g.const(np.array([0, -1, L, G], np.int64), "shape")], ["cond"],
            name="cond_reshape"))
    outputs = [helper.make_tensor_value_info("cond", TensorProto.FLOAT, ["B", "T", L, G])]
    return _model(g, inputs, outputs, "wavenet_condition", opset, meta or {})


def _excitation(g: _G, cfg: WaveNetConfig) -> str:
    """The F0 excitation (B, 2H, Tf * hop) from ``features`` (B, Tf, D + 1), with the same
    operations in the same order as :func:`vocoder.excitation.excitation`."""
    hop, H, D = cfg.hop_length, cfg.excitation, cfg.cond_channels
    f32 = lambda v: np.array(v, np.float32)
    col = lambda i: g.op("Gather", ["features", g.const(np.array(i, np.int64), "col")],
                         axis=2)  # (B, Tf)
    unsq = lambda t: g.op("Unsqueeze", [t, g.const(np.array([2], np.int64), "ax")])
    flat = lambda t: g.op("Reshape", [t, g.const(np.array([0, 1, -1], np.int64), "shape")])
    f0 = g.op("Exp", [g.op("Add", [g.op("Mul", [col(cfg.f0_feature),
                                                 g.const(f32(cfg.log_f0_std), "std")]),
                                   g.const(f32(cfg.log_f0_mean), "mean")])])
    rate = g.op("Mul", [f0, g.const(f32(2.0 * np.pi / cfg.sample_rate), "rad")])
    n = g.const(np.arange(hop, dtype=np.float32), "n")
    phase = flat(g.op("Add", [unsq(col(D)), g.op("Mul", [unsq(rate), n])]))  # (B, 1, T)
    mp = g.op("Mul", [phase, g.const(np.arange(1, H + 1, dtype=np.float32)[None, :, None],
                                     "harmonics")])  # (B, H, T)
    voiced = flat(g.op("Mul", [unsq(col(cfg.vuv_feature)),
                               g.const(np.ones(hop, np.float32), "ones")]))  # (B, 1, T)
    return g.op("Mul", [g.op("Concat", [g.op("Sin", [mp]), g.op("Cos", [mp])], axis=1),
                        voiced])
