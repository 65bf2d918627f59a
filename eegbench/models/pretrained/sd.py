"""Stable Diffusion from a local diffusers folder, weights read as safetensors only (nothing is unpickled)."""

from __future__ import annotations

from pathlib import Path

from eegbench.errors import UserError

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
        raise UserError(f"{folder}: Stable Diffusion folder not found; pass a diffusers Stable Diffusion folder, "
                        "e.g. stable-diffusion-v1-5, with --sd-weights")
    for what, options in SD_FILES.items():
        if not any((folder / o).is_file() for o in options):
            raise UserError(f"{folder / options[0]}: file not found ({what}); pass a complete diffusers-format folder "
                            "with safetensors weights (convert .bin/.ckpt with diffusers' conversion scripts)")


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

