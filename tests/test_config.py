import pytest

from vocoder.config import (
    PRESETS,
    WaveNetConfig,
    cond_context_frames,
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
