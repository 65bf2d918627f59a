"""Controls scored by the same evaluation code as the real thing: altered test inputs, or a control model.

An input control is ``fn(eeg, seed) -> eeg`` (``data.substitutes``: shuffled EEG, noise EEG). A model
control (``fn.model_control = True``) is ``fn(ctx) -> predictions`` for the scored trials, from a model
the stage trains without EEG; its ``produces`` names the prediction keys it makes (the suite's last
stage must make them too).
"""

from __future__ import annotations


def prior_only(ctx) -> dict:
    """The stage's text head trained and run on a constant input: what the language prior alone scores."""
    return ctx.stage.prior_predictions(ctx.model, ctx.data, ctx.run, ctx.pretrained, len(ctx.trials))


prior_only.model_control, prior_only.produces = True, ("text",)
