"""Classification metrics scored on predictions, never on models."""

from __future__ import annotations

import numpy as np

from eegbench.evaluate.context import evaluation


@evaluation("logits", higher_is_better=True)
def nway_top1(predictions: dict, ctx=None) -> dict:
    """N-way top-1: per-trial correctness of the argmax over all N classes; chance is 1/N (definition "top-1")."""
    logits = np.asarray(predictions["logits"])
    correct = (logits.argmax(axis=1) == np.asarray(predictions["label"])).astype(float)
    return {"per_trial": correct, "chance": 1.0 / logits.shape[1], "definition": "top-1"}
