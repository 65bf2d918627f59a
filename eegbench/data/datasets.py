"""Registered dataset components: a config model plus ``load()`` over a data family's loader."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from eegbench import progress
from eegbench.config import StrictModel
from eegbench.synthetic.imagenet_eeg import WorldSpec


class ImageNetEEG:
    """ImageNet-EEG (Spampinato et al. 2017): the real files under ``root``, or the synthetic world."""

    class Config(StrictModel):
        root: str | None = None  # folder holding the .pth files; unset = the synthetic world
        file: str = "eeg_5_95_std.pth"
        splits: str = "block_splits_by_image_all.pth"
        split_index: int = Field(0, ge=0)
        subject: int = Field(0, ge=0)  # 0 = all subjects
        interpolate: int | None = Field(None, ge=2)  # resample time to this many samples (DreamDiffusion: 512)
        images_root: str | None = None  # folder of <wnid>/<name>.JPEG for real data
        world: WorldSpec = WorldSpec()  # the synthetic world used when root is unset

    def __init__(self, config: dict, cache_dir: Path):
        self.config = self.Config.model_validate({k: v for k, v in config.items() if k != "name"})
        self.cache_dir = Path(cache_dir)

    def prepare(self) -> Path:
        """The data folder: the user's ``root``, or the synthetic world (generated once, cached)."""
        if self.config.root is not None:
            return Path(self.config.root)
        from eegbench.synthetic.imagenet_eeg import ensure

        return ensure(self.config.world, self.cache_dir, progress=progress.callback("generating synthetic world"))

    def load(self):
        """Trials of the configured subject and split file, through the real-format loader."""
        from eegbench.data.imagenet_eeg import load

        c = self.config
        return load(self.prepare(), file=c.file, splits=c.splits, subject=c.subject, split_index=c.split_index,
                    interpolate=c.interpolate, cache_dir=self.cache_dir,
                    images_root=Path(c.images_root) if c.images_root else None)
