"""The Triton source of the fused WaveNet step (see :mod:`vocoder.runtime.triton_step`),
with the shapes and layouts documented there.

Kept undecorated in a module of its own: Triton decides between compiling and
interpreting from TRITON_INTERPRET, read at import (see
:func:`vocoder.runtime.triton_step.interpreting`); importing this module needs Triton.
"""

import triton.language as tl


def wavenet_step(
    x_ptr, cond_ptr, cond_bstride,                       # (B,) int64; (B, L, 2*GH)
    src_ptr, dst_ptr, rows_ptr, state_bstride,           # past rows in, present rows out
    u_ptr, inv_t_ptr, logits_ptr, classes_ptr,           # (B,) f32; () f64; (B, A); (B,)
    hid_ptr,                                             # (B, SP) f32 scratch
    emb_ptr, wpf_ptr, wpg_ptr, wcf_ptr, wcg_ptr,         # packed weights (pack_weights)
    ws_ptr, bs_ptr, wr_ptr, br_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr,
    B, L,
    R: tl.constexpr, GH: tl.constexpr, A: tl.constexpr,
    RP: tl.constexpr, GHP: tl.constexpr, SP: tl.constexpr, AP: tl.constexpr,
    AB: tl.constexpr, HB: tl.constexpr, BB: tl.constexpr, MODE: tl.constexpr, PREC: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    b = tl.program_id(0) * BB + tl.arange(0, BB)
    bm = b < B
    r = tl.arange(0, RP)
    g = tl.arange(0, GHP)
    s = tl.arange(0, SP)
    wdt = emb_ptr.dtype.element_ty
    # Operands of tl.dot: the weights' dtype, except where DOT_F32 asks for float32 (the
    # interpreter multiplies bf16 bit patterns as integers). A product of two bf16 values
    # is exact in float32, so that models the GPU's bf16 dot up to summation order.
    ddt = tl.float32 if DOT_F32 else wdt
    sm = bm[:, None] & (r < R)[None, :]
    cm = bm[:, None] & (g < GH)[None, :]

    x = tl.load(x_ptr + b, mask=bm, other=0)
    h = tl.load(emb_ptr + x[:, None] * RP + r[None, :]).to(tl.float32)  # (BB, RP)
    skip = tl.zeros((BB, SP), dtype=tl.float32)
    w_rg = r[:, None] * GHP + g[None, :]
    # A while loop over a runtime L: Triton 3.6's interpreter cannot take range() of a
    # runtime scalar, and a constexpr L let ptxas spill more (sm_90, fp32).
    i = 0
    while i < L:
        row = tl.load(rows_ptr + i)
        st = b[:, None] * state_bstride + row * R + r[None, :]
        past = tl.load(src_ptr + st, mask=sm, other=0.0).to(wdt).to(ddt)
        cond = cond_ptr + b[:, None] * cond_bstride + i * (2 * GH) + g[None, :]
        hw = h.to(wdt).to(ddt)
        wo = i * (RP * GHP) + w_rg
        af = tl.dot(past, tl.load(wpf_ptr + wo).to(ddt), input_precision=PREC,
                    acc=tl.load(cond, mask=cm, other=0.0).to(tl.float32))
        af = tl.dot(hw, tl.load(wcf_ptr + wo).to(ddt), acc=af, input_precision=PREC)
        ag = tl.dot(past, tl.load(wpg_ptr + wo).to(ddt), input_precision=PREC,
                    acc=tl.load(cond + GH, mask=cm, other=0.0).to(tl.float32))
        ag = tl.dot(hw, tl.load(wcg_ptr + wo).to(ddt), acc=ag, input_precision=PREC)
        # Every thread must have read slot `row` before any overwrites it with present.
        tl.debug_barrier()
        tl.store(dst_ptr + st, h.to(dst_ptr.dtype.element_ty), mask=sm)
        z = ((2.0 * tl.sigmoid(2.0 * af) - 1.0) * tl.sigmoid(ag)).to(wdt).to(ddt)  # tanh * sigmoid
        skip = tl.dot(z, tl.load(ws_ptr + i * (GHP * SP) + g[:, None] * SP + s[None, :]).to(ddt),
                      acc=skip, input_precision=PREC)
        h = tl.dot(z, tl.load(wr_ptr + i * (GHP * RP) + g[:, None] * RP + r[None, :]).to(ddt),
                   acc=h, input_precision=PREC) + tl.load(br_ptr + i * RP + r)[None, :]
        i += 1
    skip = tl.maximum(skip + tl.load(bs_ptr + s)[None, :], 0.0).to(wdt).to(ddt)
    # The head in column blocks, so that no weight tile exceeds (SP, 64): the hidden
    # layer goes through a scratch row and comes back whole as the next product's input.
    for c0 in tl.static_range(0, SP, HB):
        c = c0 + tl.arange(0, HB)
        hb = tl.dot(skip, tl.load(w1_ptr + s[:, None] * SP + c[None, :]).to(ddt),
                    input_precision=PREC) + tl.load(b1_ptr + c)[None, :]
        tl.store(hid_ptr + b[:, None] * SP + c[None, :], tl.maximum(hb, 0.0),
                 mask=bm[:, None])
    tl.debug_barrier()
    hid = tl.load(hid_ptr + b[:, None] * SP + s[None, :], mask=bm[:, None], other=0.0)
    hid = hid.to(wdt).to(ddt)
    for a0 in tl.static_range(0, AP, AB):
        a = a0 + tl.arange(0, AB)
        lg = tl.dot(hid, tl.load(w2_ptr + s[:, None] * AP + a[None, :]).to(ddt),
                    input_precision=PREC) + tl.load(b2_ptr + a)[None, :]
        tl.store(logits_ptr + b[:, None] * A + a[None, :], lg,
                 mask=bm[:, None] & (a < A)[None, :])
    if MODE != 0:
        tl.debug_barrier()  # the whole row of logits is back in memory
        a = tl.arange(0, AP)
        lg = tl.load(logits_ptr + b[:, None] * A + a[None, :],
                     mask=bm[:, None] & (a < A)[None, :], other=0.0)
        lg = tl.where((a < A)[None, :], lg, float("-inf"))  # rows past B stay finite
        if MODE == 1:
            k = tl.argmax(lg, axis=1)
        else:
            zt = lg.to(tl.float64) * tl.load(inv_t_ptr)
            p = tl.exp(zt - tl.max(zt, axis=1)[:, None])  # padded classes: exp(-inf) = 0
            c = tl.cumsum(p, axis=1)
            u = tl.load(u_ptr + b, mask=bm, other=0.5).to(tl.float64)
            thresh = u * tl.max(c, axis=1)  # c is non-decreasing: its max is its total
            k = tl.sum((c < thresh[:, None]).to(tl.int32), axis=1)
            k = tl.minimum(k, A - 1)
        tl.store(classes_ptr + b, k.to(tl.int64), mask=bm)
