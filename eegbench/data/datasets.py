"""Registered dataset components: a config model plus ``load()`` over a data family's loader (and what
``eegbench data check`` reads: ``select()`` for ImageNet-EEG, ``survey()`` for TUAB)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from eegbench import progress
from eegbench.config import StrictModel
from eegbench.data.imagenet_eeg import LENGTH_RANGE
from eegbench.data.tuab import DEFAULT_SECTIONS, Recipe
from eegbench.synthetic.imagenet_eeg import WorldSpec
from eegbench.synthetic.tuab import TUABSpec


class SyntheticByDefault:
    """A dataset component whose data is the user's ``root`` or, when unset, a generated synthetic world.

    Subclasses define ``Config`` (with ``root`` and ``world``), ``generate``, ``load`` and ``offers``, what the
    loaded data holds (``contracts.DATA_ITEMS``).
    """

    Config: type[StrictModel]

    def __init__(self, config: dict, cache_dir: Path):
        self.config = self.Config.model_validate({k: v for k, v in config.items() if k != "name"})
        self.cache_dir = Path(cache_dir)

    def prepare(self) -> Path:
        """The data folder: the user's ``root``, or the synthetic world (generated once, cached)."""
        if self.config.root is not None:
            return Path(self.config.root)
        return self.generate(self.config.world, self.cache_dir)



class ImageNetEEG(SyntheticByDefault):
    """ImageNet-EEG (Spampinato et al. 2017): the real files under ``root``, or the synthetic world."""

    offers = ("eeg", "labels", "splits", "subjects", "images", "captions")  # contracts.DATA_ITEMS

    class Config(StrictModel):
        root: str | None = None  # folder holding the .pth files; unset = the synthetic world
        file: str = "eeg_5_95_std.pth"
        splits: str = "block_splits_by_image_all.pth"
        split_index: int = Field(0, ge=0)
        subject: int = Field(0, ge=0)  # 0 = all subjects; a _single split file needs one (1..6)
        length_range: tuple[int, int] = LENGTH_RANGE  # trials kept by length, inclusive (the protocol's 450..600)
        interpolate: int | None = Field(None, ge=2)  # resample what a trial has of [20:460] to this many (DreamDiffusion: 512)
        images_root: str | None = None  # folder of <wnid>/<name>.JPEG for real data
        captions: str | None = None  # JSON of image name -> caption; unset = root/captions.json
        world: WorldSpec = WorldSpec()  # the synthetic world used when root is unset

        @field_validator("length_range")
        @classmethod
        def _ordered(cls, value: tuple[int, int]) -> tuple[int, int]:
            if not 0 <= value[0] <= value[1]:
                raise ValueError("need 0 <= min <= max, e.g. [450, 600]")
            return value

    @staticmethod
    def generate(spec: WorldSpec, cache_dir: Path) -> Path:
        from eegbench.synthetic.imagenet_eeg import ensure

        return ensure(spec, cache_dir, progress=progress.callback("generating synthetic world"))

    def load(self):
        """Trials of the configured subject and split file, through the real-format loader."""
        from eegbench.data.imagenet_eeg import load

        return load(self.prepare(), **self._loader_args())

    def select(self):
        """What ``load`` keeps and drops, without reading the EEG (``eegbench data check``)."""
        from eegbench.data.imagenet_eeg import select

        return select(self.prepare(), **self._loader_args())

    def _loader_args(self) -> dict:
        c = self.config
        return dict(file=c.file, splits=c.splits, subject=c.subject, split_index=c.split_index,
                    length_range=c.length_range, interpolate=c.interpolate, cache_dir=self.cache_dir,
                    images_root=Path(c.images_root) if c.images_root else None,
                    captions=Path(c.captions) if c.captions else None)


class TUAB(SyntheticByDefault):
    """TUH Abnormal EEG (TUAB) with physician reports: a real tree under ``root``, or the synthetic one."""

    offers = ("eeg", "labels", "splits", "subjects", "recordings", "reports", "tasks")  # contracts.DATA_ITEMS

    class Config(StrictModel):
        root: str | None = None  # the folder above v3.0.1/ (or v2.0.0/); unset = the synthetic world
        version: str = "v3.0.1"
        reports: str | None = None  # folder searched for <subject>_s<NNN>.txt reports (TUAB ships none); unset = root
        report_encoding: str = "utf-8"
        sections: list[str] = list(DEFAULT_SECTIONS)  # report sections in the training text, in this order
        label_lines: bool = False  # true writes "age: .., gender: .., pathological: .." into the text (label leak)
        val_fraction: float = Field(0.2, ge=0, lt=1)  # of training subjects, held out for checkpoint selection
        split_seed: int = 0
        on_bad_file: Literal["fail", "skip"] = "fail"
        n_jobs: int = Field(0, ge=0)  # processes preprocessing recordings; 0 = one per core
        recipe: Recipe = Recipe()
        world: TUABSpec = TUABSpec()  # the synthetic world used when root is unset

    @staticmethod
    def generate(spec: TUABSpec, cache_dir: Path) -> Path:
        from eegbench.synthetic.tuab import ensure

        return ensure(spec, cache_dir, progress=progress.callback("generating synthetic TUAB"))

    def load(self):
        """Windows, labels and report texts of every usable recording (see ``data.tuab``)."""
        from eegbench.data.tuab import load

        root = self.prepare()
        return load(root, **self._loader_args(root))

    def survey(self):
        """What ``load`` keeps and skips, without reading any window (``eegbench data check``)."""
        from eegbench.data.tuab import survey

        root = self.prepare()
        return survey(root, **self._loader_args(root))

    def _loader_args(self, root: Path) -> dict:
        c = self.config
        reports = Path(c.reports) if c.reports else (root / "reports" if c.root is None else None)
        return dict(version=c.version, recipe=c.recipe, reports=reports, sections=c.sections,
                    label_lines=c.label_lines, val_fraction=c.val_fraction, split_seed=c.split_seed,
                    on_bad_file=c.on_bad_file, cache_dir=self.cache_dir, n_jobs=c.n_jobs,
                    report_encoding=c.report_encoding)
