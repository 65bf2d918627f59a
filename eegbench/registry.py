"""Named registries of datasets, encoders, heads, stages, evaluations, controls and suites.

One :class:`Registry` type (the lm-evaluation-harness pattern): entries are added with a decorator
or lazily as ``"module:attr"`` strings that are imported only when the entry is first used, so
``eegbench list`` and ``--help`` never import torch. Other packages add entries through the
entry-point group ``eegbench.plugins``: each entry point names a module (or a callable) that
registers its items when loaded.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Iterator

from eegbench.errors import UserError

PLUGIN_GROUP = "eegbench.plugins"


@dataclass
class Entry:
    """One registered item: a loaded object, or a lazy ``module:attr`` target not yet imported."""

    name: str
    target: str | None = None
    obj: Any = None
    summary: str = ""
    role: str = ""  # what part it plays among its kind (a head: classifier, text or image), known before import

    @property
    def loaded(self) -> bool:
        return self.obj is not None


class Registry:
    """A mapping from names to objects of one kind, with lazy entries and helpful misses."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self.renamed: dict[str, str] = {}  # a former name -> the name it goes by now

    def register(self, name: str, obj: Any = None, *, lazy: str | None = None, summary: str = "",
                 formerly: tuple[str, ...] = (), role: str = "") -> Any:
        """Register ``obj`` (or a lazy ``"module:attr"``) under ``name``; without either, a decorator.
        ``formerly``: names it went by before (config files using them still resolve, with a deprecation warning);
        ``role``: the part it plays, readable without importing it (:meth:`role`).

        Re-registering a name is an error unless it is the object a lazy entry pointed at
        (that happens when a lazy entry's module is imported and its decorators run).
        """
        self.renamed |= dict.fromkeys(formerly, name)
        if obj is None and lazy is None:
            return lambda o: self.register(name, o, summary=summary, role=role)
        current = self._entries.get(name)
        if current is not None and not self._same(current, obj, lazy):
            raise ValueError(f"{self.kind} {name!r} is already registered ({current.target or current.obj!r})")
        summary = summary or (current.summary if current else "") or _first_doc_line(obj)
        self._entries[name] = Entry(name, target=lazy or (current.target if current else None), obj=obj, summary=summary,
                                    role=role or (current.role if current else ""))
        return obj

    @staticmethod
    def _same(entry: Entry, obj: Any, lazy: str | None) -> bool:
        if lazy is not None:
            return entry.target == lazy
        if entry.obj is not None:
            return entry.obj is obj
        module, _, attr = entry.target.partition(":")
        return getattr(obj, "__module__", None) == module and getattr(obj, "__qualname__", None) == attr

    def role(self, name: str) -> str | None:
        """The role ``name`` (or a former name) was registered with, without importing it; None if unknown."""
        load_plugins()
        entry = self._entries.get(self.renamed.get(name, name))
        return None if entry is None else entry.role

    def id_name(self, name: str) -> str:
        """The first name ``name``'s entry went by: what run ids are computed under, so a rename keeps them."""
        return next((old for old, new in self.renamed.items() if new == name), name)

    def get(self, name: str) -> Any:
        """The object registered as ``name`` (or a former name), importing a lazy entry; unknown names raise
        UserError."""
        load_plugins()
        entry = self._entries.get(self.renamed.get(name, name))
        if entry is None:
            raise UserError(self.unknown(name))
        if not entry.loaded:
            module, _, attr = entry.target.partition(":")
            entry.obj = getattr(importlib.import_module(module), attr)
        return entry.obj

    def unknown(self, name: str) -> str:
        """The one-line error for a name not registered here, with the closest names or all of them."""
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else f"known: {', '.join(sorted(self._entries))}"
        return f"unknown {self.kind} {name!r}; {hint} (`eegbench list {self.kind}s` shows all)"

    def __contains__(self, name: str) -> bool:
        load_plugins()
        return self.renamed.get(name, name) in self._entries

    def __iter__(self) -> Iterator[Entry]:
        load_plugins()
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def names(self) -> list[str]:
        return [e.name for e in self]


def _first_doc_line(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


datasets = Registry("dataset")
encoders = Registry("encoder")
heads = Registry("head")
stages = Registry("stage")
evaluations = Registry("evaluation")
controls = Registry("control")
probes = Registry("probe")
suites = Registry("suite")

REGISTRIES: dict[str, Registry] = {
    "datasets": datasets,
    "encoders": encoders,
    "heads": heads,
    "stages": stages,
    "evaluations": evaluations,
    "controls": controls,
    "probes": probes,
    "suites": suites,
}

# Built-in entries, lazy so that listing them imports nothing heavy.
datasets.register("imagenet-eeg", lazy="eegbench.data.datasets:ImageNetEEG",
                  summary="ImageNet-EEG (Spampinato et al. 2017); synthetic world by default")
datasets.register("tuab", lazy="eegbench.data.datasets:TUAB",
                  summary="TUH Abnormal EEG with physician reports (EEG-CLIP); synthetic TUAB tree by default")
encoders.register("deep4", lazy="eegbench.models.deep4:Deep4Encoder",
                  summary="braindecode Deep4Net (Schirrmeister et al. 2017), pooled to a feature vector")
encoders.register("mae-vit", lazy="eegbench.models.mae:MAEEncoder",
                  summary="MAE-ViT over 1-D EEG tokens (DreamDiffusion), mean-pooled to a feature vector")
encoders.register("eegclip", lazy="eegbench.models.eegclip:eegclip_encoder",
                  summary="EEG-CLIP's EEG side: Deep4 + projection into the shared space (a contrastive stage trains it)")
heads.register("classifier", lazy="eegbench.models.heads:LinearClassifier", role="classifier",
               summary="linear layer from encoder features to class logits")
heads.register("sd-image", lazy="eegbench.models.image_head:ImageHead", role="image",
               summary="image head: encoder tokens as Stable Diffusion's cross-attention context (DreamDiffusion)")
heads.register("prefix-lm", lazy="eegbench.models.text_heads:PrefixLMHead", role="text", formerly=("generative",),
               summary="text head: learned prefix tokens before a frozen causal LM, free-running generation")
heads.register("retrieval", lazy="eegbench.models.text_heads:RetrievalTextHead", role="text",
               summary="text head: the nearest candidate caption in CLIP text space")
stages.register("supervised", lazy="eegbench.train.supervised:SupervisedStage",
                summary="encoder + classifier head trained with cross-entropy; checkpoint chosen on val")
stages.register("msm", lazy="eegbench.train.msm:MSMStage",
                summary="masked-signal-modelling pretraining of an MAE-ViT (DreamDiffusion); checkpoint chosen on val")
evaluations.register("nway_top1", lazy="eegbench.evaluate.classification:nway_top1",
                     summary="N-way top-1 accuracy of class predictions (N = the dataset's classes)")
stages.register("contrastive", lazy="eegbench.train.contrastive:ContrastiveStage",
                summary="EEG-CLIP: EEG encoder aligned with report text by symmetric InfoNCE; last epoch or val loss")
stages.register("joint", lazy="eegbench.train.joint:JointStage", formerly=("generative",),
                summary="one EEG encoder, an SD image head (DreamDiffusion) and/or a text head, trained jointly; chosen on val")
stages.register("projector", lazy="eegbench.train.projector:ProjectorStage",
                summary="Thought2Text: a frozen LM reading one projected embedding (CLIP phase, then EEG); chosen on val")
for _module, _name, _summary in (
        ("images", "image_nway_top1", "n-way top-1 of generated images; GT = the judge's class of the stimulus (DreamDiffusion)"),
        ("images", "image_nway_top1_max", "DreamDiffusion's (max): the best sample set's test-set n-way top-1"),
        ("images", "image_nway_top1_oracle", "n-way top-1 of each trial's best sample: an oracle choice, with its own chance"),
        ("images", "image_nway_top1_label", "n-way top-1 of generated images; GT = the dataset label"),
        ("images", "image_ssim_2way", "pair-wise 2-way identification of generated images by SSIM (skimage or gaussian)"),
        ("images", "image_pcc_2way", "pair-wise 2-way identification of generated images by pixel correlation"),
        ("images", "image_clip_2way", "pair-wise 2-way identification of generated images by CLIP image cosine"),
        ("eegclip", "zero_shot", "recording-level balanced accuracy of cosine to class prompts, per TUAB task (EEG-CLIP)"),
        ("eegclip", "zero_shot_window", "window-level balanced accuracy, nearer class prompt per window (EEG-CLIP's code)"),
        ("eegclip", "linear_probe", "logistic regression on frozen embeddings (C chosen on val), per task; label-permuted control"),
        ("eegclip", "few_shot", "logistic regression on 1-50% of training subjects x seeds: a learning curve per task"),
        ("eegclip", "retrieval", "EEG-to-report retrieval among the test reports: recall@1/5/10"),
        ("eegclip", "baselines", "task-specific Deep4, random-init encoder and other-task encoder, per task"),
        ("text", "text_bleu", "BLEU-1..4 of generated text against the stimulus caption (a named definition)"),
        ("text", "text_rouge", "ROUGE-1/2/L F1 of generated text against the stimulus caption (a named definition)"),
        ("text", "text_similarity", "MiniLM sentence-embedding cosine of generated text and the stimulus caption"),
        ("text", "clipscore_stimulus", "CLIPScore of the stimulus image and the generated text"),
        ("text", "clipscore_generated", "CLIPScore of the generated image and the generated text of a trial"),
        ("text", "image_text_consistency", "MiniLM cosine of the captioner's caption of the generated image and the generated text")):
    evaluations.register(_name, lazy=f"eegbench.evaluate.{_module}:{_name}", summary=_summary)
del _module, _name, _summary
controls.register("shuffled_eeg", lazy="eegbench.data.substitutes:shuffled_eeg",
                  summary="test EEG permuted across trials; decoding should fall to chance")
probes.register("block_confound", lazy="eegbench.evaluate.confound:block_confound_probe",
                summary="classifier on slow (< 2 Hz) content only; above chance = block-design confound")
controls.register("noise_eeg", lazy="eegbench.data.substitutes:noise_eeg",
                  summary="Gaussian noise with the test EEG's channel statistics in place of EEG")
controls.register("prior_only", lazy="eegbench.contracts:PRIOR_ONLY",
                  summary="the text head trained and run without EEG (constant input): the language prior alone")


def suite_dirs() -> list[Path]:
    """Folders holding suite YAML: the checkout's ``benchmarks/``, or its copy inside an installed wheel."""
    here = Path(__file__).resolve().parent
    return [d for d in (here.parent / "benchmarks", here / "benchmarks") if d.is_dir()]


def _register_suite_files() -> None:
    for folder in suite_dirs():
        for path in sorted(folder.glob("*.yaml")):
            if path.stem not in suites._entries:
                suites.register(path.stem, path, summary=_suite_summary(path))


def _suite_summary(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("description:"):
            return line.partition(":")[2].strip().strip("\"'")
    return ""


_plugins_loaded = False


def load_plugins() -> None:
    """Register suite files and run every ``eegbench.plugins`` entry point, once per process."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    _register_suite_files()
    for ep in entry_points(group=PLUGIN_GROUP):
        loaded = ep.load()
        if callable(loaded):
            loaded()


def register_suite_file(path: str | Path) -> None:
    """Register a suite YAML that lives outside ``benchmarks/`` (for plugins)."""
    path = Path(path)
    suites.register(path.stem, path, summary=_suite_summary(path))

