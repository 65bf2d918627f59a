"""The pretrained models a run uses: which local folders, checked before any work, loaded once.

One module per kind holds its folder check and loader: ``sd``, ``clip``, ``judge``, ``captioner``,
``lm`` and ``text``.

A run names folders in its ``models`` section (``--sd-weights``, ``--clip-weights``,
``--judge-weights``, ``--text-weights``, ``--lm-weights``, ``--captioner-weights``). A folder left
unset is taken from the synthetic world's own models (``synthetic.foundation.ensure_foundation``)
when the run's data is a synthetic world and the suite allows it; otherwise the run stops before
writing anything, with one line naming every missing input and the flag that supplies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from eegbench import progress, runtime
from eegbench.errors import UserError

if TYPE_CHECKING:
    import numpy as np

FLAGS = {"sd": "--sd-weights", "clip": "--clip-weights", "judge": "--judge-weights", "text": "--text-weights",
         "lm": "--lm-weights", "captioner": "--captioner-weights"}
WHAT = {
    "sd": "a diffusers Stable Diffusion folder, e.g. stable-diffusion-v1-5",
    "clip": "an open_clip folder: <name>.json + checkpoint, e.g. ViT-L-14",
    "judge": "a folder with vit_h_14.pth + classes.json",
    "text": "a transformers BERT-type folder (config.json, tokenizer, model.safetensors), e.g. ClinicalBERT",
    "lm": "a transformers causal LM folder (config.json, tokenizer, model.safetensors), e.g. gpt2 or Mistral-7B",
    "captioner": "a transformers BLIP captioning folder, e.g. blip-image-captioning-base",
}
def resolve_folders(cfg, data_folder: Callable[[], Path], needed: set[str], cache_dir: Path) -> dict[str, Path]:
    """Folders of the ``needed`` models (a subset of ``FLAGS``) for run config ``cfg``.

    ``data_folder()`` gives the dataset's folder (generating a synthetic world if that is the data);
    it is called only when a folder has to come from the synthetic world. An unset text encoder is
    the packaged all-MiniLM-L6-v2, a real pretrained model, except on real-inputs-only scales.
    """
    folders = {name: Path(cfg.models[name]) for name in needed if cfg.models.get(name)}
    missing = [name for name in sorted(needed) if name not in folders]
    if cfg.real_inputs_only:
        problems = [] if cfg.dataset.get("root") else ["dataset.root (--data-root DIR)"]
        problems += [f"models.{name} ({FLAGS[name]} DIR: {WHAT[name]})" for name in missing]
        if problems:
            raise UserError(f"scale {cfg.scale} of {cfg.suite} runs on real inputs only; missing: {'; '.join(problems)}")
    if "text" in missing:
        from eegbench.models.pretrained.text import default_folder

        folders["text"] = default_folder()
        missing.remove("text")
    if missing:
        world = Path(data_folder())
        if not (world / "world.json").is_file():
            raise UserError("real data needs local pretrained weights; missing: "
                            + "; ".join(f"models.{name} ({FLAGS[name]} DIR: {WHAT[name]})" for name in missing))
        from eegbench.synthetic.foundation import ensure_foundation

        label = ", ".join(missing)
        folders |= ensure_foundation(world, cache_dir, scale=cfg.models["synthetic_recipe"], names=tuple(missing),
                                     progress=progress.callback(f"building the synthetic world's {label}"))
    from eegbench.models.pretrained.captioner import check_captioner_folder
    from eegbench.models.pretrained.clip import check_clip_folder
    from eegbench.models.pretrained.judge import check_judge_folder
    from eegbench.models.pretrained.lm import check_lm_folder
    from eegbench.models.pretrained.sd import check_sd_folder
    from eegbench.models.pretrained.text import check_text_folder

    for name, check in (("sd", check_sd_folder), ("clip", check_clip_folder), ("judge", check_judge_folder),
                        ("text", check_text_folder), ("lm", check_lm_folder), ("captioner", check_captioner_folder)):
        if name in folders:
            check(folders[name])
    return folders


@dataclass
class Pretrained:
    """The run's pretrained models, each loaded from its folder on first use and then shared."""

    folders: dict[str, Path]
    cache_dir: Path
    _loaded: dict = field(default_factory=dict, repr=False)

    def _get(self, name: str, load):
        if name not in self._loaded:
            if name not in self.folders:
                raise RuntimeError(f"model {name!r} was not resolved for this run; declare it in the component's `needs`")
            self._loaded[name] = load(self.folders[name])
        return self._loaded[name]

    def sd(self):
        """The Stable Diffusion pipeline, frozen, without a safety checker, on the runtime's device: VAE and text
        encoder in the run's weight dtype, the UNet in fp32 (the image head trains some of it and casts the rest)."""
        from eegbench.models.pretrained.sd import load_sd

        def load(folder):
            rt = runtime.current()
            pipe = load_sd(folder)
            pipe.vae.to(rt.device, rt.weight_dtype)
            pipe.text_encoder.to(rt.device, rt.weight_dtype)
            pipe.unet.to(rt.device)
            return pipe

        return self._get("sd", load)

    def clip(self):
        """``(model, preprocess, tokenizer)`` of the open_clip model, on the runtime's device in fp32."""
        from eegbench.models.pretrained.clip import load_clip

        def load(folder):
            model, preprocess, tokenizer = load_clip(folder)
            return model.to(runtime.current().device), preprocess, tokenizer

        return self._get("clip", load)

    def clip_image_embeddings(self, paths) -> np.ndarray:
        """[N, D] unit CLIP image embeddings of the images at ``paths``, cached per (CLIP folder, image list)."""
        import hashlib

        from eegbench.models.pretrained.clip import clip_image_embeddings

        model, preprocess, _ = self.clip()
        digest = hashlib.sha256("\n".join(map(str, [self.folders["clip"], *paths])).encode()).hexdigest()[:16]
        return clip_image_embeddings(model, preprocess, paths, self.cache_dir / "embeddings" / f"clip-{digest}.npy")

    def judge(self):
        """The n-way judge classifier, on the runtime's device in fp32."""
        from eegbench.models.pretrained.judge import load_judge

        def load(folder):
            judge = load_judge(folder)
            judge.model.to(runtime.current().device)
            return judge

        return self._get("judge", load)

    def text(self):
        """The sentence encoder (``models.pretrained.text.TextEncoder``), frozen, on the runtime's device in fp32."""
        from eegbench.models.pretrained.text import TextEncoder

        return self._get("text", lambda folder: TextEncoder(folder).requires_grad_(False).eval()
                         .to(runtime.current().device))

    def lm(self):
        """``(model, tokenizer)`` of the causal language model, frozen (``models.pretrained.lm.load_lm``)."""
        from eegbench.models.pretrained.lm import load_lm

        def load(folder):
            rt = runtime.current()
            lm, tokenizer = load_lm(folder)
            return lm.to(rt.device, rt.weight_dtype), tokenizer

        return self._get("lm", load)

    def captioner(self):
        """The image captioner: ``caption(images) -> list[str]`` (``models.pretrained.captioner.load_captioner``), on the
        runtime's device in fp32."""
        from eegbench.models.pretrained.captioner import load_captioner

        def load(folder):
            captioner = load_captioner(folder)
            captioner.model.to(runtime.current().device)
            return captioner

        return self._get("captioner", load)
