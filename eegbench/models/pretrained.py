"""The pretrained models a run uses: which local folders, checked before any work, loaded once.

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
# What StableDiffusionPipeline.from_pretrained reads; weights only as safetensors (nothing is unpickled).
SD_FILES = {
    "model_index.json": ("model_index.json",),
    "unet weights": ("unet/diffusion_pytorch_model.safetensors",),
    "unet config": ("unet/config.json",),
    "vae weights": ("vae/diffusion_pytorch_model.safetensors",),
    "vae config": ("vae/config.json",),
    "text encoder weights": ("text_encoder/model.safetensors",),
    "text encoder config": ("text_encoder/config.json",),
    "tokenizer": ("tokenizer/tokenizer.json", "tokenizer/vocab.json"),
    "scheduler": ("scheduler/scheduler_config.json",),
}


def check_sd_folder(folder: Path) -> None:
    """Raise UserError naming the first file a diffusers SD folder lacks."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: Stable Diffusion folder not found; pass {WHAT['sd']} with {FLAGS['sd']}")
    for what, options in SD_FILES.items():
        if not any((folder / o).is_file() for o in options):
            raise UserError(f"{folder / options[0]}: file not found ({what}); pass a complete diffusers-format folder "
                            "with safetensors weights (convert .bin/.ckpt with diffusers' conversion scripts)")


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
        from eegbench.models.text import default_folder

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
    from eegbench.evaluate.judges import check_captioner_folder, check_clip_folder, check_judge_folder
    from eegbench.models.lm import check_lm_folder
    from eegbench.models.text import check_text_folder

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
        from eegbench.evaluate.judges import load_clip

        def load(folder):
            model, preprocess, tokenizer = load_clip(folder)
            return model.to(runtime.current().device), preprocess, tokenizer

        return self._get("clip", load)

    def clip_image_embeddings(self, paths) -> np.ndarray:
        """[N, D] unit CLIP image embeddings of the images at ``paths``, cached per (CLIP folder, image list)."""
        import hashlib

        from eegbench.evaluate.judges import clip_image_embeddings

        model, preprocess, _ = self.clip()
        digest = hashlib.sha256("\n".join(map(str, [self.folders["clip"], *paths])).encode()).hexdigest()[:16]
        return clip_image_embeddings(model, preprocess, paths, self.cache_dir / "embeddings" / f"clip-{digest}.npy")

    def judge(self):
        """The n-way judge classifier, on the runtime's device in fp32."""
        from eegbench.evaluate.judges import load_judge

        def load(folder):
            judge = load_judge(folder)
            judge.model.to(runtime.current().device)
            return judge

        return self._get("judge", load)

    def text(self):
        """The sentence encoder (``models.text.TextEncoder``), frozen, on the runtime's device in fp32."""
        from eegbench.models.text import TextEncoder

        return self._get("text", lambda folder: TextEncoder(folder).requires_grad_(False).eval()
                         .to(runtime.current().device))

    def lm(self):
        """``(model, tokenizer)`` of the causal language model, frozen (``models.lm.load_lm``)."""
        from eegbench.models.lm import load_lm

        def load(folder):
            rt = runtime.current()
            lm, tokenizer = load_lm(folder)
            return lm.to(rt.device, rt.weight_dtype), tokenizer

        return self._get("lm", load)

    def captioner(self):
        """The image captioner: ``caption(images) -> list[str]`` (``evaluate.judges.load_captioner``), on the
        runtime's device in fp32."""
        from eegbench.evaluate.judges import load_captioner

        def load(folder):
            captioner = load_captioner(folder)
            captioner.model.to(runtime.current().device)
            return captioner

        return self._get("captioner", load)


def load_sd(folder: Path):
    """``StableDiffusionPipeline`` from a local diffusers folder, every module frozen and in eval mode."""
    import diffusers
    import transformers
    from diffusers import StableDiffusionPipeline

    for library in (diffusers, transformers):  # their loading bars and install advice would bury eegbench's output
        library.utils.logging.set_verbosity_error()
        library.utils.logging.disable_progress_bar()
    check_sd_folder(folder)
    try:
        pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, feature_extractor=None,
                                                       requires_safety_checker=False, use_safetensors=True,
                                                       local_files_only=True)
    except Exception as e:  # diffusers raises many types for a damaged folder
        detail = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise UserError(f"{folder}: cannot load as a Stable Diffusion pipeline ({detail}); "
                        "pass a complete diffusers-format folder") from None
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.eval().requires_grad_(False)
    pipe.set_progress_bar_config(disable=True)
    return pipe

