"""EEG-CLIP's comparison models, trained by the contrastive stage beside its own model.

Per task: a Deep4 + classifier trained end to end on that task's labels (selected on val); an
untrained encoder of the same shape (random init); and, as the encoder trained for another task, the
task model of ``other_task[task]``. Like for like: unless the evaluation's arguments say otherwise,
the encoder, its arguments and its width are the EEG-CLIP stage's. The ``baselines`` evaluation
(``evaluate.eegclip``) fits its probes on what these models predict and never trains.
"""

from __future__ import annotations

import numpy as np

from eegbench.train.supervised import SupervisedStage, predict_logits


class Baselines:
    """The trained comparison models, read through what they predict."""

    def __init__(self, task_models: dict, random_encoder, batch_size: int):
        self.task_models, self.random_encoder, self.batch_size = task_models, random_encoder, batch_size

    def probability(self, task: str, eeg: np.ndarray) -> np.ndarray:
        """The task model's probability of class 1 for each window of numpy ``eeg``."""
        logits = predict_logits(self.task_models[task], eeg, self.batch_size)
        prob = np.exp(logits - logits.max(1, keepdims=True))
        return prob[:, 1] / prob.sum(1)

    def features(self, task: str | None, eeg: np.ndarray) -> np.ndarray:
        """Features of the encoder trained for ``task`` (None: the untrained one) for each window of ``eeg``."""
        encoder = self.random_encoder if task is None else self.task_models[task][0]
        return predict_logits(encoder, eeg, self.batch_size)


def train_baselines(own, data, run, seed: int, args) -> Baselines:
    """Train the task models of ``args.tasks`` and of their other tasks (checkpointed in ``run`` as
    ``baseline_<task>``) and build the untrained encoder; ``own`` is the EEG-CLIP stage's config."""
    def stage(task: str | None) -> SupervisedStage:
        return SupervisedStage(f"baseline_{task or 'random'}", {
            "encoder": args.encoder or own.encoder,
            "encoder_args": own.encoder_args if args.encoder_args is None else args.encoder_args,
            "embed_dim": args.embed_dim or own.embed_dim,
            "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "target": task}, seed)

    tasks = list(dict.fromkeys([*args.tasks, *(args.other_task[t] for t in args.tasks)]))
    task_models = {task: stage(task).run(data, run) for task in tasks}
    random_encoder = stage(None).build(data.eeg.shape[1], data.eeg.shape[2], 2).eval()[0]
    return Baselines(task_models, random_encoder, args.batch_size)
