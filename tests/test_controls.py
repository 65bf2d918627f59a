"""Controls and the block-confound probe on the synthetic world."""

import numpy as np

from eegbench.data.datasets import ImageNetEEG
from eegbench.evaluate.confound import block_confound_probe
from eegbench.data.substitutes import noise_eeg, shuffled_eeg
from eegbench.evaluate.stats import chance_interval


def test_shuffled_eeg_permutes_whole_trials():
    eeg = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3)
    out = shuffled_eeg(eeg, seed=0)
    assert sorted(map(tuple, out.reshape(5, -1))) == sorted(map(tuple, eeg.reshape(5, -1)))
    assert not np.array_equal(out, eeg)


def test_noise_eeg_keeps_shape_and_channel_statistics():
    rng = np.random.default_rng(0)
    eeg = (rng.standard_normal((200, 4, 100)) * np.array([1, 2, 3, 4])[None, :, None] + 5).astype(np.float32)
    out = noise_eeg(eeg, seed=1)
    assert out.shape == eeg.shape and out.dtype == np.float32
    assert np.allclose(out.std(axis=(0, 2)), eeg.std(axis=(0, 2)), rtol=0.02)
    assert abs(np.corrcoef(out.ravel(), eeg.ravel())[0, 1]) < 0.01


def probe_accuracy(ci_smoke, cache_dir, **world):
    cfg = {**ci_smoke.dataset, "world": {**ci_smoke.dataset["world"], **world}}
    data = ImageNetEEG(cfg, cache_dir).load()
    scored = block_confound_probe(data)
    return scored["per_trial"].mean(), chance_interval(scored["chance"], len(scored["per_trial"]))


def test_block_confound_probe_lights_up_only_with_block_drift(ci_smoke, cache_dir):
    clean, (low, high) = probe_accuracy(ci_smoke, cache_dir)
    assert low <= clean <= high, (clean, low, high)
    drifting, _ = probe_accuracy(ci_smoke, cache_dir, block_drift=1.0)
    assert drifting > 0.8
