"""Compiled kernels of the native backend: the whole step loop of a chunk in one call.

Imported only by :mod:`vocoder.runtime.native_backend` once numba is known to be there.

Weight layout (row-vector convention ``y = x @ W``, made once by :func:`pack_weights`):
one flat array, float32 or bfloat16 bits (uint16, widened to float32 in the product
loop), in the order a step reads it, so that a step streams the weights front to back:

    per layer l:  W_dil (2R, G)   the dilated conv's two taps stacked over concat(past, h)
                  W_sr  (G/2, S+R) skip | residual 1x1 convs side by side (the last
                                  layer's residual columns are zero and never read)
    then          head1 (S, S), head2 (S, A)

The running state of one stream is ``sh = [skip (S) | h (R)]``, so a layer's skip and
residual updates are one product ``sh += z @ W_sr``. Matrix products loop k (input) outer,
batch in the middle and n (output, contiguous) inner, eight input rows at a time: each
weight row is read once per step and reused across the batch while it is in L1.

Fast math is limited to reassociation and contraction (what vectorised reductions and
FMAs need); the sampler runs without it, in float64, exactly like
:func:`vocoder.runtime.sampling.sample`. ``error_model="numpy"``: a float division must
not branch to raise ZeroDivisionError, or the gate loop does not vectorise (9x slower).
"""

from __future__ import annotations

import math

import llvmlite.ir as llir
import numpy as np
from numba import njit, types
from numba.extending import intrinsic

_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}

MODE_SAMPLE = 0
MODE_GREEDY = 1
MODE_TEACHER = 2

# tanh(x) ~= x P(x^2) / Q(x^2) on [-c, c] (Eigen's float rational; saturates to +-1 beyond
# c in float32). Max error ~1e-7 (a few ulp); sigmoid(x) = 0.5 + 0.5 tanh(x / 2).
_CLAMP = np.float32(7.90531110763549805)
_A1 = np.float32(4.89352455891786e-03)
_A3 = np.float32(6.37261928875436e-04)
_A5 = np.float32(1.48572235717979e-05)
_A7 = np.float32(5.12229709037114e-08)
_A9 = np.float32(-8.60467152213735e-11)
_A11 = np.float32(2.00018790482477e-13)
_A13 = np.float32(-2.76076847742355e-16)
_B0 = np.float32(4.89352518554385e-03)
_B2 = np.float32(2.26843463243900e-03)
_B4 = np.float32(1.18534705686654e-04)
_B6 = np.float32(1.19825839466702e-06)
_HALF = np.float32(0.5)
_ZERO = np.float32(0.0)


@njit(inline="always", fastmath=_FASTMATH, error_model="numpy")
def fast_tanh(x):
    """float32 tanh by a rational approximation (max abs error ~1e-7)."""
    x = _CLAMP if x > _CLAMP else x
    x = -_CLAMP if x < -_CLAMP else x
    x2 = x * x
    p = _A13 * x2 + _A11
    p = p * x2 + _A9
    p = p * x2 + _A7
    p = p * x2 + _A5
    p = p * x2 + _A3
    p = p * x2 + _A1
    q = _B6 * x2 + _B4
    q = q * x2 + _B2
    q = q * x2 + _B0
    return x * p / q


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy")
def tanh_array(x):
    """Vectorised :func:`fast_tanh` over a float32 array (for tests)."""
    out = np.empty_like(x)
    flat, res = x.ravel(), out.ravel()
    for i in range(flat.size):
        res[i] = fast_tanh(flat[i])
    return out


@intrinsic
def _f32(typingctx, v):
    """A weight as float32: float32 as is; uint16 as bfloat16 bits (the top half of a
    float32: widen and shift, one vector shift per eight weights)."""
    if v == types.float32:
        def codegen(context, builder, sig, args):
            return args[0]
    elif v == types.uint16:
        def codegen(context, builder, sig, args):
            wide = builder.shl(builder.zext(args[0], llir.IntType(32)),
                               llir.Constant(llir.IntType(32), 16))
            return builder.bitcast(wide, llir.FloatType())
    else:
        return None
    return types.float32(v), codegen


@njit(inline="always", fastmath=_FASTMATH, error_model="numpy")
def _mm_acc(xin, w, off, K, N, ldw, y, y0):
    """y[b, y0:y0+N] += xin[b, :K] @ W for every b, W[k, n] = w[off + k * ldw + n]
    (float32, or bfloat16 bits as uint16; accumulation is float32 either way).

    Rows are taken as 1-D slices indexed by the loop counter: numba then knows every
    index is non-negative, drops its wrap-around select, and the n loop vectorises
    (four times faster than indexing ``w[r0 + n]`` directly).
    """
    B = xin.shape[0]
    k = 0
    while k + 8 <= K:
        r0 = off + k * ldw
        w0 = w[r0:r0 + N]
        w1 = w[r0 + ldw:r0 + ldw + N]
        w2 = w[r0 + 2 * ldw:r0 + 2 * ldw + N]
        w3 = w[r0 + 3 * ldw:r0 + 3 * ldw + N]
        w4 = w[r0 + 4 * ldw:r0 + 4 * ldw + N]
        w5 = w[r0 + 5 * ldw:r0 + 5 * ldw + N]
        w6 = w[r0 + 6 * ldw:r0 + 6 * ldw + N]
        w7 = w[r0 + 7 * ldw:r0 + 7 * ldw + N]
        for b in range(B):
            xb = xin[b, k:k + 8]
            x0, x1, x2, x3 = xb[0], xb[1], xb[2], xb[3]
            x4, x5, x6, x7 = xb[4], xb[5], xb[6], xb[7]
            yb = y[b, y0:y0 + N]
            for n in range(N):
                yb[n] += ((x0 * _f32(w0[n]) + x1 * _f32(w1[n])) +
                          (x2 * _f32(w2[n]) + x3 * _f32(w3[n]))) + \
                    ((x4 * _f32(w4[n]) + x5 * _f32(w5[n])) +
                     (x6 * _f32(w6[n]) + x7 * _f32(w7[n])))
        k += 8
    while k < K:
        r0 = off + k * ldw
        w0 = w[r0:r0 + N]
        for b in range(B):
            x0 = xin[b, k]
            yb = y[b, y0:y0 + N]
            for n in range(N):
                yb[n] += x0 * _f32(w0[n])
        k += 1


@njit(cache=True)
def sample_row(logits, u, inv_temperature, cdf):
    """The class for one row of logits (A,) float32 and one uniform u: inverse CDF of
    softmax(logits * inv_temperature) in float64, as :func:`sampling.sample`.
    ``inv_temperature`` 0 means greedy. ``cdf`` (A,) float64 is scratch."""
    A = logits.shape[0]
    if inv_temperature == 0.0:
        best = 0
        for j in range(1, A):
            if logits[j] > logits[best]:
                best = j
        return best
    zmax = -np.inf
    for j in range(A):
        z = np.float64(logits[j]) * inv_temperature
        if z > zmax:
            zmax = z
    c = 0.0
    for j in range(A):
        c += math.exp(np.float64(logits[j]) * inv_temperature - zmax)
        cdf[j] = c
    thresh = np.float64(u) * c
    k = 0
    for j in range(A):
        if cdf[j] < thresh:
            k += 1
    return min(k, A - 1)


@njit(cache=True)
def sample_rows(logits, u, inv_temperature):
    """logits (B, A) float32, u (B,) float32 -> classes (B,) int64 (for tests)."""
    B, A = logits.shape
    out = np.empty(B, np.int64)
    cdf = np.empty(A, np.float64)
    for b in range(B):
        out[b] = sample_row(logits[b], u[b], inv_temperature, cdf)
    return out


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy", nogil=True)
def run_chunk(w, bias, embed, cond, ring, slots, t0, x, u, inv_temperature, teacher,
              mode, out_classes, out_logits):
    """T steps of B streams in one call.

    w: packed weights (see the module docstring); bias: [b_res (L, R) | b_skip (S) |
    b_head1 (S) | b_head2 (A)] flat float32; embed (A, R); cond (B, T, L, G); ring
    (B, sum(d_l), R) updated in place; slots (period, L) ring rows; t0 steps taken so far;
    x (B,) int64 previous classes, updated in place (sampled modes); u (B, T) float32;
    teacher (B, T) int64 inputs (MODE_TEACHER). Writes out_classes (B, T) in the sampling
    modes and out_logits (B, T, A) in MODE_TEACHER.
    """
    B, T, L, G = cond.shape
    A, R = embed.shape
    H = G // 2
    S = (bias.shape[0] - L * R - A) // 2
    N = S + R
    layer = 2 * R * G + H * N
    head1 = L * layer
    head2 = head1 + S * S
    b_skip = L * R
    b_h1 = b_skip + S
    b_h2 = b_h1 + S
    period = slots.shape[0]

    xin = np.empty((B, 2 * R), np.float32)
    a = np.empty((B, G), np.float32)
    z = np.empty((B, H), np.float32)
    sh = np.empty((B, N), np.float32)
    o1 = np.empty((B, S), np.float32)
    o2 = np.empty((B, S), np.float32)
    lg = np.empty((B, A), np.float32)
    cdf = np.empty(A, np.float64)

    for i in range(T):
        row = (t0 + i) % period
        for b in range(B):
            if mode == MODE_TEACHER:
                x[b] = teacher[b, i]
            e = embed[x[b]]
            shb = sh[b]
            for n in range(S):
                shb[n] = _ZERO
            h = sh[b, S:]
            for n in range(R):
                h[n] = e[n]
        for li in range(L):
            slot = slots[row, li]
            off = li * layer
            for b in range(B):
                past = ring[b, slot]
                h = sh[b, S:]
                xp = xin[b, :R]
                xc = xin[b, R:]
                for n in range(R):
                    xp[n] = past[n]
                    xc[n] = h[n]
                    past[n] = h[n]
                ab = a[b]
                cb = cond[b, i, li]
                for n in range(G):
                    ab[n] = cb[n]
            _mm_acc(xin, w, off, 2 * R, G, G, a, 0)
            for b in range(B):
                af = a[b, :H]
                ag = a[b, H:]
                zb = z[b]
                for j in range(H):
                    zb[j] = fast_tanh(af[j]) * (_HALF + _HALF * fast_tanh(_HALF * ag[j]))
            if li < L - 1:
                _mm_acc(z, w, off + 2 * R * G, H, N, N, sh, 0)
                br = bias[li * R:(li + 1) * R]
                for b in range(B):
                    h = sh[b, S:]
                    for n in range(R):
                        h[n] += br[n]
            else:
                _mm_acc(z, w, off + 2 * R * G, H, S, N, sh, 0)
        # output head: relu -> head1 -> relu -> head2
        bs = bias[b_skip:b_skip + S]
        bh1 = bias[b_h1:b_h1 + S]
        bh2 = bias[b_h2:b_h2 + A]
        for b in range(B):
            shb = sh[b]
            o1b = o1[b]
            o2b = o2[b]
            for n in range(S):
                o1b[n] = max(shb[n] + bs[n], _ZERO)
                o2b[n] = bh1[n]
        _mm_acc(o1, w, head1, S, S, S, o2, 0)
        for b in range(B):
            o2b = o2[b]
            lgb = lg[b]
            for n in range(S):
                o2b[n] = max(o2b[n], _ZERO)
            for n in range(A):
                lgb[n] = bh2[n]
        _mm_acc(o2, w, head2, S, A, A, lg, 0)
        if mode == MODE_TEACHER:
            for b in range(B):
                lgb = lg[b]
                ob = out_logits[b, i]
                for n in range(A):
                    ob[n] = lgb[n]
        else:
            for b in range(B):
                k = sample_row(lg[b], u[b, i], inv_temperature, cdf)
                x[b] = k
                out_classes[b, i] = k


def to_bf16(a: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits (uint16), rounded to nearest even."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def pack_weights(sw, precision: str = "fp32") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:class:`~vocoder.export.weights.StepWeights` -> (w, bias, embed) as run_chunk
    reads them, contiguous. ``w`` is float32, or bfloat16 bits (uint16) when
    ``precision`` is "bf16"; biases and the embedding stay float32."""
    L, R, G = sw.w_past.shape
    H = G // 2
    S = sw.b_skip.shape[0]
    N = S + R
    blocks = []
    for li in range(L):
        blocks.append(np.concatenate([sw.w_past[li], sw.w_cur[li]]).ravel())  # (2R, G)
        sr = np.zeros((H, N), np.float32)
        sr[:, :S] = sw.w_skip[li * H:(li + 1) * H]
        if li < L - 1:
            sr[:, S:] = sw.w_res[li]
        blocks.append(sr.ravel())
    blocks += [sw.head1.ravel(), sw.head2.ravel()]
    w = np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32)
    if precision == "bf16":
        w = to_bf16(w)
    elif precision != "fp32":
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    b_res = np.zeros((L, R), np.float32)
    b_res[:L - 1] = sw.b_res
    bias = np.concatenate([b_res.ravel(), sw.b_skip, sw.b_head1, sw.b_head2])
    return w, np.ascontiguousarray(bias, np.float32), np.ascontiguousarray(sw.embed,
                                                                            np.float32)
