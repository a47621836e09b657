"""vocoder.voicing_onsets: missed voicing binned by the time since each voiced onset."""

from __future__ import annotations

import numpy as np
import pytest

from vocoder.voicing_onsets import ONSET_BINS_MS, missed_by_onset, onset_bin_labels


def test_a_late_onset_misses_only_the_first_bins():
    ref = np.zeros(100, bool)
    ref[10:60] = True  # 250 ms at 5 ms frames
    ref[70:75] = True  # 25 ms
    gen = ref.copy()
    gen[10:16] = False  # voiced 30 ms late
    gen[70:72] = False
    missed, total = missed_by_onset(ref, gen, 5.0)
    assert total.tolist() == [5 + 5, 5, 10, 20, 10]
    assert missed.tolist() == [5 + 2, 1, 0, 0, 0]
    assert onset_bin_labels() == ["0-25", "25-50", "50-100", "100-200", "200+"]
    assert len(onset_bin_labels()) == len(ONSET_BINS_MS)


def test_drift_shows_in_the_last_bins_and_unvoiced_frames_do_not_count():
    ref = np.ones(80, bool)  # voiced from the very first frame
    gen = ref.copy()
    gen[50:] = False  # gives up after 500 ms at 10 ms frames
    missed, total = missed_by_onset(ref, gen, 10.0)
    assert total.tolist() == [3, 2, 5, 10, 60]
    assert missed.tolist() == [0, 0, 0, 0, 30]
    # voicing where the reference has none is a V/UV error, but not a missed frame
    none = np.zeros(80, bool)
    assert missed_by_onset(none, ~none, 10.0)[0].sum() == 0
    assert missed_by_onset(none, ~none, 10.0)[1].sum() == 0


def test_tracks_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="one length"):
        missed_by_onset(np.ones(5, bool), np.ones(6, bool), 5.0)
