"""The generative stage: DreamDiffusion's image head, EEG -> Stable Diffusion cross-attention context.

The EEG encoder (the MAE-ViT an ``msm`` stage hands on, or a fresh one for the no-pretraining
ablations) feeds an :class:`~eegbench.models.image_head.EEGConditioner` whose output replaces the
caption's context in a frozen Stable Diffusion pipeline. Trained: the encoder, the conditioner and
the UNet's cross-attention layers with the norms before them; the VAE, text encoder and the rest
of the UNet stay frozen. Loss per batch: the usual noise-prediction MSE on the stimulus's VAE
latent plus ``clip_weight x (1 - cos(clip_head(context), CLIP image embedding of the stimulus))``.

With ``cfg_drop > 0`` that fraction of contexts is replaced by the empty caption's, so sampling
can use classifier-free guidance against it (the paper uses neither: ``cfg_drop: 0``,
``guidance_scale: 1``). The checkpoint kept is the epoch with the lowest validation diffusion loss
plus ``clip_weight`` x its CLIP alignment loss (fixed noise and timesteps per val trial): the
training objective on held-out trials; test trials are never seen. Each epoch is checkpointed
(trainable weights only) and seeded, so an interrupted run resumes to the same result.
``predict`` samples ``samples`` images per trial with the named diffusers scheduler.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field

from eegbench import progress
from eegbench.config import StrictModel
from eegbench.errors import UserError
from eegbench.train.checkpoint import load_epoch, save_epoch
from eegbench.train.stage import Stage

SCHEDULERS = {  # config name -> diffusers class; "plms" is PNDM without its Runge-Kutta warm-up, as in SD
    "plms": "PNDMScheduler",
    "ddim": "DDIMScheduler",
    "dpm": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
}
VAL_TIMESTEPS = 4  # fixed timesteps per val trial in the selection loss


class GenerativeStage(Stage):
    """EEG-conditioned Stable Diffusion (DreamDiffusion): eps-MSE + CLIP alignment; checkpoint chosen on val."""

    produces = "images"  # the prediction key evaluations read

    @property
    def needs(self) -> tuple[str, ...]:
        """The SD pipeline, and CLIP only when the alignment loss is on."""
        return ("sd", "clip") if self.config.clip_weight else ("sd",)

    class Config(StrictModel):
        encoder_args: dict = {}  # MAEEncoder shape when no earlier stage hands on an encoder (no-msm ablations)
        time_branch: bool = True  # add the context's projection to the UNet's timestep embedding
        clip_weight: float = Field(1.0, ge=0)  # 0 = no CLIP alignment
        epochs: int = Field(100, ge=1)
        batch_size: int = Field(25, ge=2)
        lr: float = Field(5.3e-5, gt=0)
        unet_lr: float | None = Field(None, gt=0)  # learning rate of the UNet's cross-attention; default: lr
        warmup_steps: int = Field(0, ge=0)  # linear warm-up, then constant
        weight_decay: float = Field(0.0, ge=0)
        cfg_drop: float = Field(0.0, ge=0, lt=1)  # fraction of contexts replaced by the empty caption's
        guidance_scale: float = Field(1.0, ge=1)  # > 1: classifier-free guidance at sampling
        scheduler: Literal["plms", "ddim", "dpm", "euler"] = "plms"
        steps: int = Field(250, ge=1)  # sampling steps
        samples: int = Field(5, ge=1)  # images per test trial
        image_size: int | None = Field(None, ge=8)  # default: the pipeline's native size
        train_on: Literal["eeg", "noise"] = "eeg"  # noise: the trained-on-noise control variant
        select_on: Literal["val"] = "val"  # checkpoint selection split; never test

    def image_size(self, pipe) -> int:
        """Side of the generated images: ``image_size``, else the pipeline's native size; checked against the UNet."""
        native = pipe.unet.config.sample_size * pipe.vae_scale_factor
        size = self.config.image_size or native
        step = pipe.vae_scale_factor * 2 ** (len(pipe.unet.config.block_out_channels) - 1)
        if size % step:
            raise UserError(f"stages.{self.name}.image_size: {size} px does not fit this pipeline, which needs a "
                            f"multiple of {step} (its native size is {native}); change or remove image_size")
        return size

    def precheck(self, data, pretrained) -> None:
        """Before any work: the image size fits the pipeline; the train and val stimulus images exist."""
        from eegbench.data.stimuli import check_stimuli

        self.image_size(pretrained.sd())
        check_stimuli(data, np.concatenate([data.splits["train"], data.splits["val"]]))

    def build(self, n_chans: int, n_times: int, pipe, clip_dim: int, encoder=None):
        """The trainable model around ``pipe``; ``encoder`` is an MAEEncoder handed on, or None for a fresh one."""
        import torch

        from eegbench.models.image_head import EEGImageModel
        from eegbench.models.mae import MAEEncoder

        torch.manual_seed(self.seed)
        if encoder is None:
            encoder = self.make(MAEEncoder, n_chans=n_chans, n_times=n_times, **self.config.encoder_args)
        elif not hasattr(encoder, "tokens"):
            raise UserError(f"stages.{self.name}: needs a token encoder (an msm stage's MAE-ViT) before it, got "
                            f"{type(encoder).__name__}; put an msm stage first or none at all")
        encoder.drop_decoder()  # pretraining's decoder is not part of the image model
        return EEGImageModel(encoder, pipe, clip_dim, time_branch=self.config.time_branch)

    def run(self, data, run, model=None, pretrained=None):
        """Train on the train split, select on val; return the selected :class:`EEGImageModel`."""
        import torch
        import torch.nn.functional as F

        from diffusers import DDPMScheduler

        from eegbench.evaluate.judges import clip_image_embeddings

        c = self.config
        pipe = pretrained.sd()
        size = self.image_size(pipe)
        clip_dim = pretrained.clip()[0].visual.output_dim if c.clip_weight else pipe.unet.config.cross_attention_dim
        n_chans, n_times = data.eeg.shape[1:]
        model = self.build(n_chans, n_times, pipe, clip_dim, encoder=model)
        done = run.load_checkpoint(self.name)
        if done is not None:
            model.load_state_dict(done[0])
            return model

        train, val = data.splits["train"], data.splits["val"]
        if len(train) < 2 or len(val) == 0:
            raise UserError(f"stages.{self.name}: needs train and val trials (got {len(train)} and {len(val)}); "
                            "check the dataset's split file")
        images = np.unique(data.image[np.concatenate([train, val])])
        paths = [data.image_path(int(np.flatnonzero(data.image == i)[0])) for i in images]
        slot = {int(img): k for k, img in enumerate(images)}
        run.log(f"{self.name}: encoding {len(images)} train/val stimuli at {size} px")
        latents = encode_latents(pipe, paths, size)
        if c.clip_weight:
            clip_model, preprocess, _ = pretrained.clip()
            name = f"clip-{_digest([pretrained.folders['clip'], *paths])}.npy"
            clip_emb = torch.from_numpy(clip_image_embeddings(clip_model, preprocess, paths,
                                                              pretrained.cache_dir / "embeddings" / name))
        else:  # no alignment loss (logged as 0)
            clip_emb = None

        def inputs(split, part):
            x = self.training_eeg(np.ascontiguousarray(data.eeg[split], dtype=np.float32), part)
            return torch.from_numpy(x), torch.tensor([slot[int(i)] for i in data.image[split]])

        x_train, s_train = inputs(train, "train")
        x_val, s_val = inputs(val, "val")
        unet_ids = {id(p) for p in model.unet_params.parameters()}
        opt = torch.optim.AdamW([
            {"params": [p for p in model.parameters() if id(p) not in unet_ids], "peak": c.lr},
            {"params": list(model.unet_params.parameters()), "peak": c.unet_lr or c.lr}], weight_decay=c.weight_decay)
        steps_per_epoch = len(x_train) // c.batch_size or 1
        best, history, start = load_epoch(run, self.name, model, opt, initial={"loss": math.inf})
        run.log(f"{self.name}: training on {len(train)} trials ({c.train_on}), selecting on {len(val)} val trials")

        scheduler = DDPMScheduler.from_config(pipe.scheduler.config)  # the forward process the UNet was trained on
        for epoch in progress.track(range(start, c.epochs), f"{self.name}: training", total=c.epochs - start):
            torch.manual_seed(self.seed * 100_003 + epoch)
            model.train()
            order = torch.randperm(len(x_train))
            sums = {"diffusion": 0.0, "clip": 0.0}
            for i in range(steps_per_epoch):
                step = epoch * steps_per_epoch + i
                for group in opt.param_groups:
                    group["lr"] = group["peak"] * (min(1.0, (step + 1) / c.warmup_steps) if c.warmup_steps else 1.0)
                idx = order[i * c.batch_size:(i + 1) * c.batch_size]
                context = model.context(x_train[idx])
                drop = torch.rand(len(idx)) < c.cfg_drop
                cond = torch.where(drop[:, None, None], model.null_context, context)
                diffusion = model.diffusion_loss(latents[s_train[idx]], cond, scheduler)
                align = ((1 - F.cosine_similarity(model.clip_embedding(context), clip_emb[s_train[idx]])).mean()
                         if clip_emb is not None else torch.zeros(()))
                loss = diffusion + c.clip_weight * align
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sums["diffusion"] += diffusion.item()
                sums["clip"] += align.item()
            val = validation_losses(model, x_val, latents[s_val], None if clip_emb is None else clip_emb[s_val],
                                    scheduler, c.batch_size, self.seed)
            val_loss = val["diffusion"] + c.clip_weight * val["clip"]
            if not math.isfinite(val_loss):
                raise UserError(f"stages.{self.name}: val loss is {val_loss} after epoch {epoch} (training "
                                f"diverged); lower stages.{self.name}.lr or add warmup_steps")
            history.append({"epoch": epoch, "train_diffusion": sums["diffusion"] / steps_per_epoch,
                            "train_clip": sums["clip"] / steps_per_epoch, "val_diffusion": val["diffusion"],
                            "val_clip": val["clip"], "val_loss": val_loss})
            run.log(f"{self.name}: epoch {epoch} diffusion {history[-1]['train_diffusion']:.4f} "
                    f"clip {history[-1]['train_clip']:.4f} val_diffusion {val['diffusion']:.4f} "
                    f"val_clip {val['clip']:.4f} val_loss {val_loss:.4f}")
            if val_loss < best["loss"]:
                best = {"loss": val_loss, "epoch": epoch, "state": {k: v.clone() for k, v in model.state_dict().items()}}
            save_epoch(run, self.name, model, opt, best, {"epoch": epoch, "history": history})

        model.load_state_dict(best["state"])
        run.save_checkpoint(self.name, model.state_dict(), {
            "selected_on": "val", "best_epoch": best["epoch"], "val_loss": best["loss"], "history": history,
            "image_size": size, "train_on": c.train_on})
        run.drop_checkpoint(self.name, resume=True)
        run.log(f"{self.name}: selected epoch {best['epoch']} on val (loss {best['loss']:.4f})")
        return model

    def predict(self, model, eeg) -> dict:
        """``{"images": uint8 [trials, samples, 3, H, W]}`` sampled from numpy ``eeg`` [trials, C, T].

        Every call starts from the same seeded noise, so real and control predictions are paired.
        """
        import torch
        from diffusers import schedulers

        c = self.config
        sampler = getattr(schedulers, SCHEDULERS[c.scheduler]).from_config(
            model.pipe.scheduler.config, **({"skip_prk_steps": True} if c.scheduler == "plms" else {}))
        pipe = type(model.pipe)(**{**model.pipe.components, "scheduler": sampler})  # the loaded pipeline stays as it was
        pipe.set_progress_bar_config(disable=True)
        size = self.image_size(pipe)
        generator = torch.Generator().manual_seed(self.seed)
        model.eval()
        out = []
        per_call = max(1, 64 // c.samples)
        with torch.no_grad():
            for i in progress.track(range(0, len(eeg), per_call), f"{self.name}: sampling",
                                    total=math.ceil(len(eeg) / per_call)):
                x = torch.from_numpy(np.ascontiguousarray(eeg[i:i + per_call], dtype=np.float32))
                context = model.context(x).repeat_interleave(c.samples, dim=0)
                images = pipe(prompt_embeds=context, negative_prompt_embeds=model.null_context.expand_as(context),
                              guidance_scale=c.guidance_scale, num_inference_steps=c.steps, height=size, width=size,
                              generator=generator, output_type="pt").images
                out.append((images.clamp(0, 1) * 255).round().to(torch.uint8).view(len(x), c.samples, 3, size, size))
        return {"images": torch.cat(out).numpy()}


def encode_latents(pipe, paths, size: int):
    """Scaled VAE latent means ``[N, C, h, w]`` of the images at ``paths``, rendered at ``size`` px."""
    import torch

    from eegbench.data.stimuli import load_pixels

    pixels = torch.from_numpy(load_pixels(paths, size)).float() / 127.5 - 1
    with torch.no_grad():
        latents = torch.cat([pipe.vae.encode(pixels[i:i + 64]).latent_dist.mean for i in range(0, len(pixels), 64)])
    return latents * pipe.vae.config.scaling_factor


def validation_losses(model, eeg, latents, clip_emb, scheduler, batch_size: int, seed: int) -> dict:
    """Val ``diffusion`` loss (``VAL_TIMESTEPS`` fixed timesteps per trial, fixed noise) and ``clip`` alignment
    loss (0 when ``clip_emb`` is None)."""
    import torch
    import torch.nn.functional as F

    model.eval()
    sums, count = {"diffusion": 0.0, "clip": 0.0}, 0
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(0, len(eeg), batch_size):
            context = model.context(eeg[i:i + batch_size])
            for k in range(VAL_TIMESTEPS):
                loss = model.diffusion_loss(latents[i:i + batch_size], context, scheduler, stratum=(k, VAL_TIMESTEPS))
                sums["diffusion"] += loss.item() * len(context) / VAL_TIMESTEPS
            if clip_emb is not None:
                align = 1 - F.cosine_similarity(model.clip_embedding(context), clip_emb[i:i + batch_size])
                sums["clip"] += align.sum().item()
            count += len(context)
    return {k: v / count for k, v in sums.items()}


def _digest(paths) -> str:
    import hashlib

    return hashlib.sha256("\n".join(str(p) for p in paths).encode()).hexdigest()[:16]
