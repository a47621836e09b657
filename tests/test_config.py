import pytest

from vocoder.config import (
    PRESETS,
    WaveNetConfig,
    cond_context_frames,
    context_dilations,
    context_receptive_field,
    context_state_size,
    dilations,
    flops_per_sample,
    receptive_field,
    ring_offsets,
    ring_size,
    ring_slots,
)
from vocoder.errors import VocoderError


def test_paper_dilations_restart_each_stack():
    cfg = PRESETS["paper"]
    d = dilations(cfg)
    assert d[:10] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert d == d[:10] * 3
    assert receptive_field(cfg) == 1 + 3 * 1023


def test_dilation_limit_restarts_within_a_stack():
    cfg = WaveNetConfig(layers=8, stacks=1, dilation_limit=4)
    assert dilations(cfg) == [1, 2, 4, 1, 2, 4, 1, 2]


def test_ring_layout_offsets_and_period():
    cfg = WaveNetConfig(layers=4, stacks=2)
    assert dilations(cfg) == [1, 2, 1, 2]
    assert ring_offsets(cfg) == [0, 1, 3, 4]
    assert ring_size(cfg) == 6
    assert ring_slots(cfg, 3) == [0, 2, 3, 5]
    assert ring_slots(cfg, 3) == ring_slots(cfg, 3 + cfg.max_dilation)


def test_flops_match_the_closed_form():
    # counted by hand for G = 2R: L(8R^2 + 2SR + 2R^2) - 2R^2 + 2S^2 + 512S
    cfg = WaveNetConfig()
    R, S, L = 64, 128, 20
    assert flops_per_sample(cfg) == L * (8 * R * R + 2 * S * R + 2 * R * R) - 2 * R * R \
        + 2 * S * S + 512 * S


@pytest.mark.parametrize("bad, msg", [
    (dict(gate_channels=15), "even"),
    (dict(layers=7, stacks=2), "multiple of stacks"),
    (dict(dilation_limit=100), "power of two"),
    (dict(residual_channels=0), "residual_channels"),
    (dict(upsample_scales=(4, 1)), "upsample scale"),
    (dict(cond_channels=-1), "cond_channels"),
    (dict(layers=2.5), "must be an int"),
    (dict(cond_channels=3, upsample_scales=()), "must not be empty"),
    (dict(context_pool=-1), "context_pool must be >= 0"),
    (dict(context_pool=8, context_channels=0), "context_channels > 0"),
    (dict(context_pool=8, context_layers=0), "context_layers > 0"),
    (dict(context_pool=8, context_dilation_limit=6), "context_dilation_limit must be a power"),
    (dict(context_pool=True), "context_pool must be an int"),
])
def test_impossible_configs_are_rejected(bad, msg):
    with pytest.raises(ValueError, match=msg):
        WaveNetConfig(**bad)


def test_dict_round_trip_and_unknown_keys():
    cfg = WaveNetConfig(cond_channels=7, n_speakers=2)
    assert WaveNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(VocoderError, match="unknown model config keys"):
        WaveNetConfig.from_dict({**cfg.to_dict(), "kernel": 3})


def test_context_frames_zero_without_local_conditioning():
    assert cond_context_frames(WaveNetConfig()) == 0
    assert cond_context_frames(WaveNetConfig(cond_channels=3)) > 0


def test_context_stack_geometry():
    cfg = WaveNetConfig(layers=4, stacks=1, dilation_limit=8, context_pool=80,
                        context_layers=5, context_dilation_limit=4)
    assert context_dilations(cfg) == [1, 2, 4, 1, 2]
    assert context_receptive_field(cfg) == 1 + 10
    assert context_state_size(cfg) == 10
    # the stacks chain: 12 blocks behind the earliest gate bias the main stack reads
    # (D - 1 = 14 samples back)
    assert receptive_field(cfg) == 80 * 12 + 15 - 1
    wide = cfg.replace(layers=12, dilation_limit=512, context_pool=2, context_layers=1)
    assert receptive_field(wide) == 2 * 3 + sum(dilations(wide)) - 1
    assert receptive_field(wide) > 1 + sum(dilations(wide))
    none = WaveNetConfig(context_layers=3)  # context fields without a pool: no stack
    assert context_dilations(none) == [] and context_receptive_field(none) == 0


def test_flops_count_the_context_stack_per_sample():
    base = WaveNetConfig(layers=4, stacks=1)
    P, Rc, n = 16, 8, 3
    cfg = base.replace(context_pool=P, context_channels=Rc, context_layers=n)
    per_block = 2 * P * Rc + n * (2 * (2 * Rc) ** 2 + 2 * Rc * Rc) + 2 * Rc * 4 * 128
    assert flops_per_sample(cfg) - flops_per_sample(base) == round(per_block / P)


def test_old_config_dicts_without_context_fields_load_unchanged():
    old = WaveNetConfig(cond_channels=7).to_dict()
    for k in ("context_pool", "context_channels", "context_layers",
              "context_dilation_limit"):
        del old[k]
    cfg = WaveNetConfig.from_dict(old)
    assert cfg.context_pool == 0 and cfg == WaveNetConfig(cond_channels=7)
    ctx = WaveNetConfig(context_pool=40, context_channels=12)
    assert WaveNetConfig.from_dict(ctx.to_dict()) == ctx
