"""The block-design confound probe (Li et al., TPAMI 2021).

In a block design every test trial shares its class block, and the block's slow drift, with
training trials. A classifier that sees only each trial's slowest content decodes the class
without any stimulus information. In a 0.44 s trial the content below 2 Hz is the per-channel
mean (the first frequency bin is 2.3 Hz), so the probe is a logistic regression (sklearn's
defaults) on channel means in the data's own units: they are not standardised, because
standardising would blow numerically negligible means up into features. Above chance, the run
warns that its decoding may ride on the drift rather than on the stimulus.
"""

from __future__ import annotations

import numpy as np


def block_confound_probe(data, seed: int = 0) -> dict:
    """Per-trial correctness on test of the probe fit on train channel means."""
    from sklearn.linear_model import LogisticRegression

    train, test = data.splits["train"], data.splits["test"]
    means = np.stack([np.asarray(data.eeg[i], dtype=np.float32).mean(-1) for i in np.concatenate([train, test])])
    probe = LogisticRegression(max_iter=3000, random_state=seed).fit(means[: len(train)], data.label[train])
    correct = (probe.predict(means[len(train):]) == data.label[test]).astype(float)
    return {"per_trial": correct, "chance": 1.0 / len(data.wnids)}
