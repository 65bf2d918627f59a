"""What every training stage shares: a name, a validated config and a seed.

A stage subclasses :class:`Stage`, defines its pydantic ``Config`` and implements
``run(data, run, model, pretrained)`` and ``predict(model, eeg)``, and optionally
``precheck(data, pretrained)``, called before the run writes anything (see ``eegbench.runner``).
The comparison models it can train beside its own (``comparisons``: a model control such as
``prior_only``, or the baselines an evaluation scores) come from ``train_comparison``, which the
runner calls after the stages and before any scoring: evaluations only read predictions.
It declares its contract (``eegbench.contracts``): the model kinds it ``consumes`` from the stage
before it, the kind it ``hands_on``, what it ``requires`` of the dataset and what it ``produces``
for evaluations; the config refuses a chain that does not fit before any work.
"""

from __future__ import annotations

from typing import Any, Callable

from eegbench.config import StrictModel
from eegbench.errors import UserError


class Stage:
    """Base of the registered stages."""

    Config: type[StrictModel] = StrictModel
    needs: tuple[str, ...] = ()  # pretrained models the stage reads: "sd", "clip", "judge"
    produces: tuple[str, ...] = ()  # the keys of predict()'s output that evaluations read; (): predicts nothing
    consumes: tuple[str | None, ...] = (None,)  # model kinds taken from the stage before (contracts); None: nothing
    hands_on: str = ""  # the kind of model run() returns (contracts)
    requires: tuple[str, ...] = ("eeg", "splits")  # what the dataset must offer (contracts.DATA_ITEMS)
    comparisons: tuple[str, ...] = ()  # comparison models train_comparison makes (controls', evaluations' names)

    def __init__(self, name: str, config: dict, seed: int):
        self.name = name
        self.config = self.Config.model_validate({k: v for k, v in config.items() if k != "kind"})
        self.seed = seed

    def training_eeg(self, eeg, part: str):
        """``eeg`` as training sees it: itself, or Gaussian noise of its channel statistics when the stage's
        ``train_on`` is ``noise`` (the trained-on-noise control); ``part`` (train/val) picks the noise seed."""
        from eegbench.data.substitutes import noise_eeg

        if getattr(self.config, "train_on", "eeg") == "eeg":
            return eeg
        return noise_eeg(eeg, seed=self.seed + {"train": 1000, "val": 2000}[part])

    def initialise(self, encoder, run) -> None:
        """Start the fresh ``encoder`` from the run ``init_from`` names (a folder, or ``suite/variant/<run id>`` in
        this run's store), when the stage has one; logged in the run."""
        from pathlib import Path

        from eegbench.train.checkpoint import load_encoder

        source = getattr(self.config, "init_from", None)
        if source is None:
            return
        folder = Path(source) if Path(source).is_absolute() else Path(run.path).parents[2] / source
        run.log(f"{self.name}: encoder initialised from {folder} ({load_encoder(encoder, folder)})")

    def make(self, factory: Callable[..., Any], **kwargs) -> Any:
        """``factory(**kwargs)`` (kwargs include the user's ``encoder_args``), with bad arguments
        reported against ``stages.<name>.encoder_args``."""
        try:
            return factory(**kwargs)
        except TypeError as exc:
            raise UserError(f"stages.{self.name}.encoder_args: {exc}; fix the argument names") from None
        except UserError as exc:
            raise UserError(f"stages.{self.name}.encoder_args: {exc}") from None

    def train_comparison(self, name: str, model, data, run, pretrained, args=None):
        """Train comparison model ``name`` (one of ``comparisons``) beside ``model``, checkpointed in ``run``;
        ``args`` are the scoring evaluation's arguments. Returns what the control or evaluation reads: an
        object whose methods predict."""
        raise NotImplementedError(f"{type(self).__name__} trains no comparison model {name!r}")
