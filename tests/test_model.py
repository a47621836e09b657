"""The model's contracts: causality, receptive field, step = forward, conditioning shapes."""

import numpy as np
import pytest
import torch

from tests.conftest import make_config
from vocoder.config import receptive_field
from vocoder.model import WaveNet

CONFIGS = [
    make_config(),
    make_config(layers=4, stacks=1, dilation_limit=2),
    make_config(cond_channels=4, upsample_scales=(2, 2)),
    make_config(cond_channels=4, upsample_scales=(3, 2), cond_hidden=0),
    make_config(cond_channels=3, n_speakers=2, gc_channels=3, upsample_scales=(3,)),
    make_config(residual_channels=6, gate_channels=10, skip_channels=5, layers=5, stacks=1,
                quantization_channels=64),
    make_config(cond_channels=4, n_speakers=2, upsample_scales=(2, 3), excitation=2,
                f0_feature=1, vuv_feature=3, log_f0_mean=5.0, log_f0_std=0.3),
]
#: With a context stack (P = 8 or 5): conditioned, and unconditional.
CONTEXT_CONFIGS = [
    make_config(layers=4, stacks=1, dilation_limit=4, cond_channels=3, n_speakers=2,
                upsample_scales=(2, 2), context_pool=8, context_channels=6, context_layers=3,
                context_dilation_limit=2),
    make_config(layers=3, stacks=1, dilation_limit=4, cond_channels=0, gc_channels=2,
                context_pool=5, context_channels=4, context_layers=4,
                context_dilation_limit=4),
]
CONFIGS += CONTEXT_CONFIGS


def _inputs(cfg, B=2, T=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    hop = cfg.hop_length
    T = T or 8 * hop * 3
    kw = {}
    if cfg.cond_channels:
        tf = -(-T // hop)
        kw["features"] = torch.randn(B, tf, cfg.cond_input_channels, generator=g)
        if cfg.excitation:  # voicing flags and frame phases, as the data gives them
            kw["features"][..., cfg.vuv_feature] = torch.randint(0, 2, (B, tf), generator=g)
            kw["features"][..., -1] = torch.rand(B, tf, generator=g) * 6.28
    if cfg.n_speakers:
        kw["speaker"] = torch.randint(0, cfg.n_speakers, (B,), generator=g)
    if cfg.gc_channels:
        kw["gc"] = torch.randn(B, cfg.gc_channels, generator=g)
    x = torch.randint(0, cfg.quantization_channels, (B, T), generator=g)
    return x, kw


def _model(cfg, seed=0):
    torch.manual_seed(seed)
    m = WaveNet(cfg).eval()
    with torch.no_grad():
        m.gate_bias.normal_(0, 0.1)
    return m


@pytest.mark.parametrize("cfg", CONFIGS)
def test_causality_bit_identical(cfg):
    m = _model(cfg)
    x, kw = _inputs(cfg)
    T = x.shape[1]
    with torch.no_grad():
        a = m(x, **kw)
        x2 = x.clone()
        x2[:, T // 2:] = torch.randint(0, cfg.quantization_channels, (2, T - T // 2))
        b = m(x2, **kw)
    assert torch.equal(a[..., : T // 2], b[..., : T // 2])
    assert not torch.equal(a[..., T // 2:], b[..., T // 2:])


@pytest.mark.parametrize("cfg", CONFIGS[:2] + CONFIGS[4:7])
def test_receptive_field_exact(cfg):
    m = _model(cfg)
    rf = receptive_field(cfg)
    T = rf + 10
    t = T - 1
    x, kw = _inputs(cfg, B=1, T=T)

    def changed(pos):
        x2 = x.clone()
        x2[0, pos] = (x2[0, pos] + 1) % cfg.quantization_channels
        with torch.no_grad():
            return not torch.equal(m(x, **kw)[..., t], m(x2, **kw)[..., t])

    assert changed(t - rf + 1)
    assert not changed(t - rf)


@pytest.mark.parametrize("seed", range(6))
def test_step_loop_with_ring_equals_forward(seed):
    rng = np.random.default_rng(seed)
    layers_per_stack = int(rng.integers(1, 5))
    stacks = int(rng.integers(1, 3))
    R = int(rng.integers(2, 9))
    cfg = make_config(residual_channels=R, gate_channels=2 * int(rng.integers(1, 8)),
                      skip_channels=int(rng.integers(2, 9)),
                      layers=layers_per_stack * stacks, stacks=stacks,
                      cond_channels=int(rng.integers(1, 5)), n_speakers=3,
                      gc_channels=int(rng.integers(0, 3)),
                      upsample_scales=tuple(int(s) for s in rng.integers(2, 4, size=2)))
    if seed >= 4:  # with the F0 excitation input
        cfg = cfg.replace(excitation=seed - 3, f0_feature=0, vuv_feature=cfg.cond_channels - 1,
                          log_f0_mean=4.5, log_f0_std=0.5)
    m = _model(cfg, seed)
    x, kw = _inputs(cfg, B=2, T=5 * cfg.hop_length, seed=seed)
    T = x.shape[1]
    with torch.no_grad():
        ref = m(x, **kw)
        cond = m.condition(kw.get("features"), kw.get("speaker"), n_samples=T, gc=kw.get("gc"))
        ring = m.init_ring(2)
        from vocoder.runtime.ring import RingLayout

        layout = RingLayout.of(cfg)
        slots = torch.from_numpy(np.array(layout.slots))
        out = []
        for t in range(T):
            s = slots[t % layout.period]
            logits, present = m.step(x[:, t], cond[:, t], ring[:, s])
            ring[:, s] = present
            out.append(logits)
    err = (torch.stack(out, -1) - ref).abs().max().item()
    assert err < 1e-4


@pytest.mark.parametrize("scales", [(2,), (3,), (4, 4, 5), (2, 3, 2), (5, 5)])
@pytest.mark.parametrize("frames", [1, 2, 7])
def test_condition_length_is_frames_times_hop(scales, frames):
    cfg = make_config(cond_channels=3, upsample_scales=scales)
    m = _model(cfg)
    with torch.no_grad():
        c = m.condition(torch.randn(2, frames, 3))
    assert c.shape == (2, frames * cfg.hop_length, cfg.layers, cfg.gate_channels)


def test_upsampler_starts_as_interpolation():
    # untrained, a constant feature upsamples to (almost) the same constant
    cfg = make_config(cond_channels=2, upsample_scales=(4, 5), cond_hidden=0)
    m = _model(cfg)
    with torch.no_grad():
        m.upsample.convs[0].weight.zero_()
        m.upsample.convs[1].weight.zero_()
        from vocoder.model import _triangle_kernel

        for conv, s in zip(m.upsample.convs, (4, 5)):
            conv.weight[:] = torch.eye(2)[:, :, None] * _triangle_kernel(s)
        y = m.upsample(torch.ones(1, 2, 6))
    assert torch.allclose(y[..., 20:-20], torch.ones(()), atol=1e-6)


def test_unused_parameters_absent():
    # every parameter gets a gradient (DDP needs no find_unused_parameters)
    cfg = CONFIGS[4]
    m = _model(cfg)
    x, kw = _inputs(cfg)
    m(x, **kw).sum().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_missing_conditioning_is_a_clear_error():
    cfg = CONFIGS[4]
    m = _model(cfg)
    x, kw = _inputs(cfg)
    with pytest.raises(ValueError, match="needs features"):
        m(x, speaker=kw["speaker"], gc=kw["gc"])
    with pytest.raises(ValueError, match="speakers"):
        m(x, features=kw["features"], gc=kw["gc"])


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("keep", [1, 7, 40])
def test_forward_keep_gives_the_last_positions(cfg, keep):
    """Training asks only for the lossed positions; each layer then skips what they do
    not depend on, and the result must equal the full forward's tail."""
    m = _model(cfg)
    x, kw = _inputs(cfg, T=receptive_field(cfg) + 40)
    with torch.no_grad():
        full = m(x, **kw)
        tail = m(x, **kw, keep=keep, channels_last=True)
    assert tail.shape == (2, keep, cfg.quantization_channels)
    torch.testing.assert_close(tail.transpose(1, 2), full[..., -keep:], rtol=0, atol=1e-5)


def test_forward_keep_gradients_match_full_forward():
    cfg = CONFIGS[6]
    m = _model(cfg)
    x, kw = _inputs(cfg, T=receptive_field(cfg) + 30)
    target = torch.randint(0, cfg.quantization_channels, (2, 30))
    grads = []
    for keep in (None, 30):
        m.zero_grad()
        logits = m(x, **kw, keep=keep, channels_last=True)[:, -30:]
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten()).backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters()})
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_excitation_input_width_is_checked():
    cfg = CONFIGS[6]
    m = _model(cfg)
    x, kw = _inputs(cfg)
    with pytest.raises(ValueError, match="frame phase"):
        m(x, features=kw["features"][..., :-1], speaker=kw["speaker"])


def test_condition_without_features_takes_the_batch_of_speaker_or_gc():
    cfg = make_config(cond_channels=0, n_speakers=3, gc_channels=2)
    model = WaveNet(cfg).eval()
    spk, gc = torch.tensor([0, 2, 1]), torch.randn(3, 2)
    with torch.no_grad():
        c = model.condition(None, spk, n_samples=5, gc=gc)
        assert c.shape == (3, 5, cfg.layers, cfg.gate_channels)
        for b in range(3):  # each row is its own speaker's and vector's bias
            one = model.condition(None, spk[b:b + 1], n_samples=5, gc=gc[b:b + 1])
            assert torch.allclose(c[b], one[0])
        with pytest.raises(ValueError, match="batch=2"):
            model.condition(None, spk, n_samples=5, gc=gc, batch=2)


def _context_step_loop(m, x, kw):
    """Logits (B, A, T) of the step loop with the context stack's step at every block
    boundary: the ring for the main stack, the explicit context state for the other."""
    cfg = m.cfg
    B, T = x.shape
    P = cfg.context_pool
    from vocoder.runtime.ring import RingLayout

    cond = m.condition(kw.get("features"), kw.get("speaker"), n_samples=T, gc=kw.get("gc"),
                       batch=B)
    ring = m.init_ring(B)
    layout = RingLayout.of(cfg)
    slots = torch.from_numpy(np.array(layout.slots))
    state = m.init_context_state(B)
    block = m.context.initial_block(B)
    out = []
    for t in range(T):
        if t % P == 0:
            bias, state = m.context_step(block, state)
            bias = bias.reshape(B, cfg.layers, cfg.gate_channels)
            block = x[:, t:t + P]  # the inputs of this block feed the next one's bias
        s = slots[t % layout.period]
        logits, present = m.step(x[:, t], cond[:, t] + bias, ring[:, s])
        ring[:, s] = present
        out.append(logits)
    return torch.stack(out, -1)


@pytest.mark.parametrize("cfg", CONTEXT_CONFIGS)
@pytest.mark.parametrize("T", [40, 43, 3])
def test_context_step_loop_equals_forward(cfg, T):
    """Teacher forcing: forward = main step + context step at each block boundary, also
    for a length that is not a multiple of P and one shorter than a block."""
    m = _model(cfg)
    x, kw = _inputs(cfg, B=2, T=T)
    with torch.no_grad():
        ref = m(x, **kw)
        got = _context_step_loop(m, x, kw)
    assert (got - ref).abs().max().item() < 1e-4
    # the context stack changes the logits (it is not a no-op)
    with torch.no_grad():
        m.context.proj.weight.zero_()
        assert (m(x, **kw) - ref).abs().max().item() > 1e-3


@pytest.mark.parametrize("cfg", CONTEXT_CONFIGS)
def test_context_receptive_field_exact(cfg):
    """At the worst t the logits see P * (rfc + 1) + rf_main - 2 inputs, no more: the
    context stack reaches rfc blocks back from the block of the earliest sample whose
    gate bias the main stack reads (D - 1 samples back)."""
    from vocoder.config import context_receptive_field, dilations

    m = _model(cfg)
    with torch.no_grad():  # strong taps, so that the oldest block's trace survives
        for taps in m.context.taps:
            taps.weight.mul_(4)
    P, rfc, D = cfg.context_pool, context_receptive_field(cfg), sum(dilations(cfg))
    rf = receptive_field(cfg)
    assert rf == P * (rfc + 1) + D - 1
    T = rf + 3 * P
    # the worst t: the earliest bias it reads is the last sample of its block
    t = max(t for t in range(T) if (t - D + 1) % P == P - 1)
    x, kw = _inputs(cfg, B=1, T=T)

    def changed(pos):
        x2 = x.clone()  # a large change: the far end of a random stack is faint
        x2[0, pos] = (x2[0, pos] + cfg.quantization_channels // 2) \
            % cfg.quantization_channels
        with torch.no_grad():
            return not torch.equal(m(x, **kw)[..., t], m(x2, **kw)[..., t])

    assert changed(t - rf + 1)
    assert not changed(t - rf)


def test_context_stack_parameters_all_get_gradients():
    cfg = CONTEXT_CONFIGS[0]
    m = _model(cfg)
    x, kw = _inputs(cfg)
    m(x, **kw).sum().backward()
    names = [n for n, p in m.named_parameters() if n.startswith("context.")]
    assert len(names) == 2 + 4 * cfg.context_layers + 1
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_context_step_needs_a_context_stack():
    m = _model(CONFIGS[0])
    with pytest.raises(ValueError, match="no context stack"):
        m.init_context_state(1)
