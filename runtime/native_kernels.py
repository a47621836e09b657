"""Compiled kernels of the native backend: the whole step loop of a chunk in one call.

Imported only by :mod:`vocoder.runtime.native_backend` once numba is known to be there.

Weight layout (row-vector convention ``y = x @ W``, made once by :func:`pack_weights`),
float32 or bfloat16 bits (uint16, widened to float32 in the product loop):

    w, per layer l:  W_cur (R, G)   the dilated conv's tap at t
                     W_sr (G/2, S+R) skip | residual 1x1 convs side by side (the last
                                    layer's residual columns are zero and never read)
       then          head1 (S, S), head2 (S, A)
    wp               W_past (L, R, G) the dilated conv's tap at t - d_l

``w`` is what every step reads, front to back. The past tap is not: its input
h_l[t - d_l] is known d_l steps ahead, so the past tap of the next min(d_l, 16) steps of
a layer is one small matrix product (each weight row reused for every step of the
block) into a per-layer buffer that the steps then read a row of. That takes the past
taps (a quarter of the weights) off the per-step stream, which then fits the L2 cache
of a typical core (1.8 MB for the default model instead of 2.4 MB): 1.3x faster on one
core at batch 1. Layer 0's input is an embedding row, so both of its taps are lookups
in precomputed (A, G) tables.

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
import mmap
from dataclasses import dataclass

import llvmlite.ir as llir
import numpy as np
from numba import njit, types
from numba.extending import intrinsic

_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}

MODE_SAMPLE = 0
MODE_TEACHER = 2

#: Steps of a layer's past tap computed as one product (the default of past_blocks).
PAST_BLOCK = 16

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


@intrinsic
def _pow2(typingctx, n):
    """2.0 ** n as float64 for an int64 n in [-1022, 1023], from the exponent bits."""
    if n != types.int64:
        return None

    def codegen(context, builder, sig, args):
        bits = builder.shl(builder.add(args[0], llir.Constant(llir.IntType(64), 1023)),
                           llir.Constant(llir.IntType(64), 52))
        return builder.bitcast(bits, llir.DoubleType())
    return types.float64(types.int64), codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
# 1/k! for k = 12..2 (Horner): |r| <= ln2/2 leaves a truncation error below 2e-16.
_INV_FACT = tuple(1.0 / math.factorial(k) for k in range(12, 1, -1))


@njit(inline="always", fastmath={"contract"}, error_model="numpy")
def _exp_nonpos(y):
    """exp(y) in float64 for y <= 0 (within ~2 ulp; exp(-708) below -708, where it no
    longer matters against a sum >= 1). No libm call, so a loop over it vectorises."""
    y = max(y, -708.0)
    n = math.floor(y * _LOG2E + 0.5)
    r = (y - n * _LN2_HI) - n * _LN2_LO
    p = _INV_FACT[0]
    p = p * r + _INV_FACT[1]
    p = p * r + _INV_FACT[2]
    p = p * r + _INV_FACT[3]
    p = p * r + _INV_FACT[4]
    p = p * r + _INV_FACT[5]
    p = p * r + _INV_FACT[6]
    p = p * r + _INV_FACT[7]
    p = p * r + _INV_FACT[8]
    p = p * r + _INV_FACT[9]
    p = p * r + _INV_FACT[10]
    p = p * r * r + r + 1.0
    return p * _pow2(np.int64(n))


@njit(cache=True)
def exp_nonpos_array(y):
    """:func:`_exp_nonpos` over a float64 array (for tests)."""
    out = np.empty_like(y)
    for i in range(y.size):
        out[i] = _exp_nonpos(y[i])
    return out


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
    for j in range(A):  # vectorised: no call in the loop
        cdf[j] = _exp_nonpos(np.float64(logits[j]) * inv_temperature - zmax)
    c = 0.0
    for j in range(A):
        c += cdf[j]
        cdf[j] = c
    thresh = np.float64(u) * c
    k = 0
    for j in range(A):
        if cdf[j] < thresh:
            k += 1
    return min(k, A - 1)


@njit(cache=True, nogil=True)
def sample_rows(logits, u, inv):
    """logits (B, A) float32, u (B,) float32, inv (B,) float64 inverse temperatures
    (0: greedy) -> classes (B,) int64."""
    B, A = logits.shape
    out = np.empty(B, np.int64)
    cdf = np.empty(A, np.float64)
    for b in range(B):
        out[b] = sample_row(logits[b], u[b], inv[b], cdf)
    return out


@njit(cache=True, fastmath=_FASTMATH, error_model="numpy", nogil=True)
def run_chunk(w, wp, e0, bias, embed, cond, ring, slots, sched, t0, x, xlast, u,
              inv_temperature, teacher, mode, out_classes, out_logits):
    """T steps of B streams in one call.

    w: the per-step weights and wp (L, R, G) flat the past taps (see the module docstring);
    e0 (2, A, G): layer 0's past and current taps applied to every embedding row; bias:
    [b_res (L, R) | b_skip (S) | b_head1 (S) | b_head2 (A)] flat float32; embed (A, R);
    cond (B, T, L, G); ring (B, sum(d_l), R) updated in place; slots (period, L) ring
    rows; sched (4, L) int64 the past-tap schedule of :func:`past_schedule`;
    t0 steps taken so far; x (B,) int64 previous classes, updated in place (sampled
    modes); xlast (B,) int64 the input class of step t0 - 1 (-1 at t0 = 0), updated in
    place; u (B, T) float32; inv_temperature (B, T) float64 per-sample inverse
    temperatures (0: greedy); teacher (B, T) int64 inputs (MODE_TEACHER). Writes
    out_classes (B, T) in the sampling modes and out_logits (B, T, A) in MODE_TEACHER.
    """
    B, T, L, G = cond.shape
    A, R = embed.shape
    H = G // 2
    S = (bias.shape[0] - L * R - A) // 2
    N = S + R
    layer = R * G + H * N
    head1 = L * layer
    head2 = head1 + S * S
    b_skip = L * R
    b_h1 = b_skip + S
    b_h2 = b_h1 + S
    period = slots.shape[0]
    blks, phases, starts, ends = sched[0], sched[1], sched[2], sched[3]
    blk_max = 1
    for li in range(L):
        blk_max = max(blk_max, blks[li])

    pblk = np.empty((B, L, blk_max, G), np.float32)
    xc = np.empty((B, R), np.float32)
    a = np.empty((B, G), np.float32)
    z = np.empty((B, H), np.float32)
    sh = np.empty((B, N), np.float32)
    o1 = np.empty((B, S), np.float32)
    o2 = np.empty((B, S), np.float32)
    lg = np.empty((B, A), np.float32)
    cdf = np.empty(A, np.float64)

    for i in range(T):
        t = t0 + i
        row = t % period
        for b in range(B):
            if mode == MODE_TEACHER:
                x[b] = teacher[b, i]
            shb = sh[b]
            for n in range(S):
                shb[n] = _ZERO
        for li in range(L):
            slot = slots[row, li]
            off = li * layer
            blk = blks[li]
            j = (t - phases[li]) % blk
            if li == 0:
                # Layer 0's input is an embedding row, so both of its taps are table rows
                # (xlast < 0: no step taken yet, the ring is zero).
                for b in range(B):
                    ab = a[b]
                    cb = cond[b, i, 0]
                    ec = e0[1, x[b]]
                    if xlast[b] >= 0:
                        ep = e0[0, xlast[b]]
                        for n in range(G):
                            ab[n] = (cb[n] + ep[n]) + ec[n]
                    else:
                        for n in range(G):
                            ab[n] = cb[n] + ec[n]
                    e = embed[x[b]]
                    past = ring[b, slot]
                    h = sh[b, S:]
                    for n in range(R):
                        h[n] = e[n]
                        past[n] = e[n]
            else:
                if j == 0 or i == 0:
                    # The past tap of this block's steps reads inputs h[t-d..] that are
                    # all in the ring already: one product reuses every weight row up to
                    # blk times (the per-step weights then fit the L2 cache). The ring
                    # rows wrap at most once (blk <= d).
                    cnt = min(blk - j, T - i)
                    n1 = min(cnt, ends[li] - slot)
                    for b in range(B):
                        pb = pblk[b, li]
                        for k in range(cnt):
                            cb = cond[b, i + k, li]
                            pk = pb[j + k]
                            for n in range(G):
                                pk[n] = cb[n]
                        _mm_acc(ring[b, slot:slot + n1], wp, li * R * G, R, G, G,
                                pb[j:j + n1], 0)
                        if cnt > n1:
                            lo = starts[li]
                            _mm_acc(ring[b, lo:lo + cnt - n1], wp, li * R * G, R, G, G,
                                    pb[j + n1:j + cnt], 0)
                for b in range(B):
                    past = ring[b, slot]
                    h = sh[b, S:]
                    xcb = xc[b]
                    for n in range(R):
                        xcb[n] = h[n]
                        past[n] = h[n]
                    ab = a[b]
                    pk = pblk[b, li, j]
                    for n in range(G):
                        ab[n] = pk[n]
                _mm_acc(xc, w, off, R, G, G, a, 0)
            for b in range(B):
                af = a[b, :H]
                ag = a[b, H:]
                zb = z[b]
                for n in range(H):
                    zb[n] = fast_tanh(af[n]) * (_HALF + _HALF * fast_tanh(_HALF * ag[n]))
            if li < L - 1:
                _mm_acc(z, w, off + R * G, H, N, N, sh, 0)
                br = bias[li * R:(li + 1) * R]
                for b in range(B):
                    h = sh[b, S:]
                    for n in range(R):
                        h[n] += br[n]
            else:
                _mm_acc(z, w, off + R * G, H, S, N, sh, 0)
        for b in range(B):
            xlast[b] = x[b]
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
                k = sample_row(lg[b], u[b, i], inv_temperature[b, i], cdf)
                x[b] = k
                out_classes[b, i] = k


def to_bf16(a: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits (uint16), rounded to nearest even."""
    u = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def from_bf16(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bits (uint16) -> float32."""
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32)


@dataclass(frozen=True)
class PackedWeights:
    """The arrays run_chunk reads, contiguous. ``w`` and ``wp`` are float32, or bfloat16
    bits (uint16) at precision "bf16"; the rest is float32."""

    w: np.ndarray
    wp: np.ndarray
    e0: np.ndarray
    bias: np.ndarray
    embed: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.w.nbytes + self.wp.nbytes + self.e0.nbytes)


def pack_weights(sw, precision: str = "fp32") -> PackedWeights:
    """:class:`~vocoder.export.weights.StepWeights` -> :class:`PackedWeights` in the
    layout of the module docstring."""
    L, R, G = sw.w_past.shape
    H = G // 2
    S = sw.b_skip.shape[0]
    N = S + R
    blocks = []
    for li in range(L):
        blocks.append(sw.w_cur[li].ravel())  # (R, G)
        sr = np.zeros((H, N), np.float32)
        sr[:, :S] = sw.w_skip[li * H:(li + 1) * H]
        if li < L - 1:
            sr[:, S:] = sw.w_res[li]
        blocks.append(sr.ravel())
    blocks += [sw.head1.ravel(), sw.head2.ravel()]
    w = np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32)
    wp = np.ascontiguousarray(sw.w_past, dtype=np.float32).ravel()
    w0 = np.stack([sw.w_past[0], sw.w_cur[0]]).astype(np.float32)  # (2, R, G)
    if precision == "bf16":
        w, wp = to_bf16(w), to_bf16(wp)
        w0 = from_bf16(to_bf16(w0))  # the tables use the weights the products use
    elif precision != "fp32":
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    w, wp = huge_page_arrays([w, wp])
    embed = np.ascontiguousarray(sw.embed, np.float32)
    e0 = np.einsum("ar,krg->kag", embed.astype(np.float64), w0.astype(np.float64))
    b_res = np.zeros((L, R), np.float32)
    b_res[:L - 1] = sw.b_res
    bias = np.concatenate([b_res.ravel(), sw.b_skip, sw.b_head1, sw.b_head2])
    return PackedWeights(w, wp, np.ascontiguousarray(e0, np.float32),
                         np.ascontiguousarray(bias, np.float32), embed)


#: Transparent huge page size on x86-64 and arm64 Linux.
HUGE_PAGE = 2 << 20


def huge_page_arrays(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Copies of ``arrays`` side by side in one anonymous mapping that asks Linux for
    transparent huge pages (``madvise``), starting on a 2 MB boundary.

    The step reads every weight page each step: in 4 KB pages that is 600 TLB entries,
    more than the first-level TLB holds; in two 2 MB pages it is two (README has the
    measured gain, from `python -m bench.native`). Where the OS has no ``madvise`` (or
    refuses), plain copies."""
    sizes = [-(-a.nbytes // 64) * 64 for a in arrays]
    try:
        mm = mmap.mmap(-1, sum(sizes) + HUGE_PAGE,
                       flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        mm.madvise(mmap.MADV_HUGEPAGE)
    except (AttributeError, OSError, ValueError):
        return [np.ascontiguousarray(a).copy() for a in arrays]
    buf = np.frombuffer(mm, np.uint8)  # the arrays keep the mapping alive
    off = (-buf.ctypes.data) % HUGE_PAGE
    out = []
    for a, size in zip(arrays, sizes):
        view = buf[off:off + a.nbytes].view(a.dtype).reshape(a.shape)
        view[...] = a
        out.append(view)
        off += size
    return out


def past_schedule(dilations, offsets, block: int = PAST_BLOCK) -> np.ndarray:
    """(4, L) int64: per layer, the number of steps whose past tap runs as one product,
    min(d_l, block); the step (mod that) each block starts at; the layer's first and
    one-past-last ring row (``offsets`` (L,) the first rows).

    Blocks of different layers start at staggered steps, so each step computes about
    one layer's block rather than every layer's at once: a burst of every past tap
    (0.5 MB for the default model) would push the per-step weights out of L2."""
    d = np.asarray(dilations, np.int64)
    if d[0] != 1 or np.any(d < 1) or np.any(d & (d - 1)):
        raise ValueError(f"dilations must be powers of two starting at 1, got {list(d)}")
    L = len(d)
    blocks = np.minimum(d, block)
    phases = (np.arange(L) * block // L) % blocks
    starts = np.asarray(offsets, np.int64)
    return np.ascontiguousarray(np.stack([blocks, phases, starts, starts + d]))
