"""What each part of a run provides and takes, declared so that a suite's chain (dataset -> stages ->
evaluations) is checked when the config resolves: before any data is read or any model trained.

A stage takes the model the stage before it handed on (``consumes``: the kinds it accepts, ``None``
for none, i.e. it may come first) and hands on a model of one kind (``hands_on``). The kinds:

- ``feature-encoder``: EEG ``[B, C, T]`` -> features ``[B, out_dim]`` (:class:`FeatureEncoder`)
- ``token-encoder``: a feature encoder that also gives per-token outputs ``tokens(x)``
  ``[B, n_tokens, width]`` (:class:`TokenEncoder`, e.g. the MAE-ViT)
- ``classifier``: an encoder and a class head, ``nn.Sequential(encoder, head)``
- ``joint``, ``eeg-text``, ``text-projector``: a stage's own model, read only by its ``predict``

A dataset offers named items (``offers``: ``DATA_ITEMS``); a stage or an evaluation that needs one
the dataset lacks (``requires``) is refused. A model control (:class:`ModelControl`) is a comparison
model the last stage must be able to train (its ``comparisons``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

DATA_ITEMS = {
    "eeg": "EEG trials or windows [n, channels, times]",
    "labels": "one class label per trial",
    "splits": "train / val / test positions",
    "subjects": "the subject of each trial",
    "images": "the stimulus image of each trial (files on disk)",
    "captions": "a caption per stimulus image",
    "recordings": "the recording each window comes from",
    "reports": "a clinical report text per recording",
    "tasks": "per-recording labels of several tasks (pathological, age, ...)",
}
# a kind -> the kinds it also is
IS_ALSO = {"feature-encoder": (), "token-encoder": ("feature-encoder",), "classifier": (), "joint": (),
           "eeg-text": (), "text-projector": ()}


@runtime_checkable
class FeatureEncoder(Protocol):
    """EEG ``[B, C, T]`` -> features ``[B, out_dim]``."""

    def __call__(self, x): ...


@runtime_checkable
class TokenEncoder(Protocol):
    """A feature encoder that also gives its per-token outputs ``[B, n_tokens, width]``."""

    def __call__(self, x): ...

    def tokens(self, x): ...


PROTOCOLS = {"feature-encoder": FeatureEncoder, "token-encoder": TokenEncoder}


def accepts(consumes: tuple, handed: str | None) -> bool:
    """Whether a stage that ``consumes`` these kinds (``None``: nothing) takes a model of kind ``handed``."""
    if handed is None:
        return None in consumes
    return any(k == handed or k in IS_ALSO[handed] for k in consumes if k is not None)


def a(kind: str) -> str:
    """``kind`` with its indefinite article: "a classifier", "an eeg-text"."""
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def describe(consumes: tuple) -> str:
    """``consumes`` in words: "nothing (it comes first) or a token-encoder"."""
    return " or ".join("nothing (it comes first)" if k is None else a(k) for k in consumes)


def conforms(model, kind: str) -> bool:
    """Whether ``model`` offers what ``kind`` promises (the protocol's methods); kinds without a protocol pass."""
    protocol = PROTOCOLS.get(kind)
    return protocol is None or isinstance(model, protocol)


@dataclass(frozen=True)
class ModelControl:
    """A control that is a model: the last stage trains it beside its own without the EEG
    (``Stage.train_comparison`` under the control's registered name) and its predictions on the test trials,
    the ``produces`` keys, are scored like the real model's. Input controls are functions of the test EEG
    (``data.substitutes``)."""

    produces: tuple[str, ...]
    model_control: bool = True


PRIOR_ONLY = ModelControl(produces=("text",))  # the stage's text head on a constant input: the language prior alone
