"""The tiny Stable Diffusion: an AutoencoderKL and a UNet conditioned on the frozen CLIP text tower."""

from __future__ import annotations

import shutil
from pathlib import Path

from eegbench.synthetic.foundation.clip import clip_text_encoder
from eegbench.synthetic.foundation.recipe import (LATENT_CHANNELS, TEXT_WIDTH, UNET_CHANNELS, Progress, Recipe,
                                                  mirror_caption, optimise, schedule, world_images)


def train_sd(world_root: Path, recipe: Recipe, out: Path, clip_folder: Path, progress: Progress = None) -> dict:
    """Train the VAE, then the UNet on frozen text contexts from ``clip_folder``'s text tower; save the pipeline."""
    import torch
    import torch.nn.functional as F
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTokenizer

    from eegbench.models.pretrained.clip import load_clip

    total = recipe.vae_steps + recipe.unet_steps
    data = world_images(world_root, ("train",), recipe.image_size)
    x = data.pixels.float() / 127.5 - 1
    x = torch.cat([x, x.flip(-1)])
    captions = data.captions + [mirror_caption(c) for c in data.captions]
    clip_model, _, _ = load_clip(clip_folder)
    text_encoder = clip_text_encoder(clip_model)
    tokenizer = CLIPTokenizer.from_pretrained(Path(clip_folder) / "tokenizer")

    torch.manual_seed(recipe.seed)
    g = torch.Generator().manual_seed(recipe.seed)
    n_blocks = len(recipe.vae_channels)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n_blocks,
                        up_block_types=("UpDecoderBlock2D",) * n_blocks, block_out_channels=recipe.vae_channels,
                        layers_per_block=1, latent_channels=LATENT_CHANNELS, norm_num_groups=8,
                        sample_size=recipe.image_size, mid_block_add_attention=False)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=recipe.vae_lr)
    scheduler = schedule(optimizer, recipe.warmup, recipe.vae_steps)
    vae_loss = float("nan")
    for step in range(recipe.vae_steps):
        batch = x[torch.randint(len(x), (recipe.batch,), generator=g)]
        posterior = vae.encode(batch).latent_dist
        recon = vae.decode(posterior.sample(generator=g)).sample
        vae_loss = optimise(F.mse_loss(recon, batch) + 1e-6 * posterior.kl().mean(), vae, optimizer, scheduler)
        if progress:
            progress(step + 1, total)
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        latents = torch.cat([vae.encode(x[i: i + 256]).latent_dist.mean for i in range(0, len(x), 256)])
        recon_mse = float(F.mse_loss(torch.cat([vae.decode(latents[i: i + 256]).sample
                                                for i in range(0, len(x), 256)]), x))
    vae.register_to_config(scaling_factor=float(1 / latents.std()))
    latents = latents * vae.config.scaling_factor

    unet = UNet2DConditionModel(
        sample_size=latents.shape[-1], in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS,
        block_out_channels=UNET_CHANNELS, layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_WIDTH, attention_head_dim=8)
    noise_scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                    beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                                    steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=noise_scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    with torch.no_grad():
        context = torch.cat([pipe.encode_prompt(captions[i: i + 256], "cpu", 1, False)[0]
                             for i in range(0, len(captions), 256)])
        null = pipe.encode_prompt([""], "cpu", 1, False)[0]
    optimizer = torch.optim.AdamW(unet.parameters(), lr=recipe.lr)
    scheduler = schedule(optimizer, recipe.warmup, recipe.unet_steps)
    unet.train()
    loss = float("nan")
    for step in range(recipe.unet_steps):
        idx = torch.randint(len(latents), (recipe.batch,), generator=g)
        drop = torch.rand(len(idx), generator=g) < recipe.cfg_drop
        cond = torch.where(drop[:, None, None], null, context[idx])
        noise = torch.randn(latents[idx].shape, generator=g)
        t = torch.randint(noise_scheduler.config.num_train_timesteps, (len(idx),), generator=g)
        pred = unet(noise_scheduler.add_noise(latents[idx], noise, t), t, cond).sample
        loss = optimise(F.mse_loss(pred, noise), unet, optimizer, scheduler)
        if progress:
            progress(recipe.vae_steps + step + 1, total)
    unet.eval()
    pipe.save_pretrained(out, safe_serialization=True)
    shutil.copytree(Path(clip_folder) / "tokenizer", Path(out) / "tokenizer", dirs_exist_ok=True)  # + vocab.json, merges.txt
    return {"final_loss": loss, "vae_final_loss": vae_loss, "vae_recon_mse": recon_mse,
            "latent_shape": list(latents.shape[1:]), "train_pairs": len(captions)}
