"""The generative stage: one EEG encoder, DreamDiffusion's image head and/or a text head, trained jointly.

Image head (``image: true``, DreamDiffusion). The EEG encoder (the MAE-ViT an ``msm`` stage hands
on, or a fresh one for the no-pretraining ablations) feeds an :class:`~eegbench.models.image_head.EEGConditioner` whose output replaces the
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

Text head (``text:``, the multitask design). The encoder's mean token feeds a text head
(``models.text_heads``): a frozen causal LM behind learned prefix tokens (cross-entropy, teacher
forced in training; free-running generation in ``predict``) or retrieval of the nearest candidate
caption in CLIP text space (InfoNCE). ``eeg_text_weight`` adds InfoNCE between the pooled EEG
features and the caption's CLIP text embedding. The joint objective is the weighted sum of the
losses of the heads that are on, in training and in validation selection alike; ``image: false``
gives the text-only model and no ``text`` the image-only one. ``prior_predictions`` trains the
same text head on a constant input: the prior-only control (the language prior, no EEG).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from eegbench import progress
from eegbench.config import StrictModel
from eegbench.errors import UserError
from eegbench.train.checkpoint import load_epoch, save_epoch
from eegbench.train.stage import Stage
from eegbench.train.text import Decoding

SCHEDULERS = {  # config name -> diffusers class; "plms" is PNDM without its Runge-Kutta warm-up, as in SD
    "plms": "PNDMScheduler",
    "ddim": "DDIMScheduler",
    "dpm": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
}
VAL_TIMESTEPS = 4  # fixed timesteps per val trial in the selection loss


class TextHeadConfig(Decoding):
    """The text head: ``generative`` (prefix tokens before a causal LM) or ``retrieval`` (nearest candidate)."""

    kind: Literal["generative", "retrieval"] = "generative"
    weight: float = Field(1.0, gt=0)  # of its loss (LM cross-entropy or InfoNCE) in the joint objective
    lr: float | None = Field(None, gt=0)  # learning rate of the head's own parameters; default: the stage's lr
    candidates: Literal["train_captions", "class_phrasings"] = "train_captions"  # retrieval: the output set


class GenerativeStage(Stage):
    """EEG -> images (Stable Diffusion, DreamDiffusion) and/or captions from one encoder; chosen on val."""

    class Config(StrictModel):
        encoder_args: dict = {}  # MAEEncoder shape when no earlier stage hands on an encoder (no-msm ablations)
        image: bool = True  # the image head; false: a text-only model (no Stable Diffusion)
        text: TextHeadConfig | None = None  # the text head; unset: images only (DreamDiffusion)
        eeg_text_weight: float = Field(0.0, ge=0)  # InfoNCE of pooled EEG features vs the caption's CLIP text embedding
        consistency_weight: float = Field(0.0, ge=0)  # text head's loss on the captioner's caption of the generated image
        consistency_every: int = Field(10, ge=1)  # epochs between re-captioning images freshly generated per train trial
        consistency_steps: int = Field(5, ge=1)  # sampling steps of those images
        time_branch: bool = True  # add the context's projection to the UNet's timestep embedding
        clip_weight: float = Field(1.0, ge=0)  # 0 = no CLIP image alignment
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

        @model_validator(mode="after")
        def _some_head(self):
            if not self.image and self.text is None:
                raise ValueError("image is false and text is unset: the stage would train no head; enable one")
            if self.consistency_weight and not (self.image and self.text):
                raise ValueError("consistency_weight needs both heads (image: true and a text head); set it to 0")
            return self

    @property
    def produces(self) -> tuple[str, ...]:
        return ("images",) * self.config.image + ("text",) * (self.config.text is not None)

    @property
    def needs(self) -> tuple[str, ...]:
        """SD for images; CLIP for image alignment, EEG-text alignment or retrieval; the LM for generated text."""
        c, text = self.config, self.config.text
        clip = (c.image and c.clip_weight) or c.eeg_text_weight or (text and text.kind == "retrieval")
        return (("sd",) * c.image + ("clip",) * bool(clip) + ("lm",) * bool(text and text.kind == "generative")
                + ("captioner",) * bool(c.consistency_weight))

    @property
    def weights(self) -> dict[str, float]:
        """Weight of each loss in the joint objective (train and val), for the heads that are on."""
        c = self.config
        out = {"diffusion": 1.0, "clip": c.clip_weight} if c.image else {}
        if c.text:
            out["text"] = c.text.weight
        if c.eeg_text_weight:
            out["eeg_text"] = c.eeg_text_weight
        if c.consistency_weight:  # trained on, not selected on: val trials have no generated images
            out["consistency"] = c.consistency_weight
        return out

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
        """Before any work: the image size fits the pipeline and the stimuli exist; every trial has a caption."""
        from eegbench.data.stimuli import check_stimuli

        if self.config.image:
            self.image_size(pretrained.sd())
            check_stimuli(data, np.concatenate([data.splits["train"], data.splits["val"]]))
        if self.config.text or self.config.eeg_text_weight:
            data.captions_of(np.concatenate([data.splits[s] for s in ("train", "val", "test")]))

    def build(self, n_chans: int, n_times: int, pretrained, data, encoder=None):
        """The trainable :class:`JointModel`; ``encoder`` is an MAEEncoder handed on, or None for a fresh one."""
        import torch

        from eegbench.models.image_head import ImageHead
        from eegbench.models.joint import JointModel
        from eegbench.models.mae import MAEEncoder

        c = self.config
        torch.manual_seed(self.seed)
        if encoder is None:
            encoder = self.make(MAEEncoder, n_chans=n_chans, n_times=n_times, **c.encoder_args)
        elif not hasattr(encoder, "tokens"):
            raise UserError(f"stages.{self.name}: needs a token encoder (an msm stage's MAE-ViT) before it, got "
                            f"{type(encoder).__name__}; put an msm stage first or none at all")
        encoder.drop_decoder()  # pretraining's decoder is not part of the model
        image = None
        if c.image:
            pipe = pretrained.sd()
            clip_dim = pretrained.clip()[0].visual.output_dim if c.clip_weight else pipe.unet.config.cross_attention_dim
            image = ImageHead(pipe, encoder.n_tokens, encoder.embed_dim, clip_dim, time_branch=c.time_branch)
        text = self.text_head(encoder.embed_dim, pretrained, data) if c.text else None
        align = pretrained.clip()[0].text_projection.shape[1] if c.eeg_text_weight else None
        return JointModel(encoder, image, text, align)

    def text_head(self, width: int, pretrained, data):
        """A fresh text head of the configured kind over features of ``width``."""
        import torch

        from eegbench.evaluate.judges import clip_text_embeddings
        from eegbench.models.text_heads import RetrievalTextHead

        t = self.config.text
        if t.kind == "generative":
            return t.lm_head(width, pretrained)
        if t.candidates == "train_captions":
            candidates = sorted(set(data.captions_of(data.splits["train"])))
        else:
            candidates = [f"a {name}" for name in data.class_names]
        clip_model, _, tokenizer = pretrained.clip()
        return RetrievalTextHead(width, candidates, torch.from_numpy(clip_text_embeddings(clip_model, tokenizer, candidates)))

    def run(self, data, run, model=None, pretrained=None):
        """Train on the train split, select on val; return the selected :class:`JointModel`."""
        import torch
        import torch.nn.functional as F

        c = self.config
        n_chans, n_times = data.eeg.shape[1:]
        model = self.build(n_chans, n_times, pretrained, data, encoder=model)
        done = run.load_checkpoint(self.name)
        if done is not None:
            model.load_state_dict(done[0])
            return model

        train, val = data.splits["train"], data.splits["val"]
        if len(train) < 2 or len(val) == 0:
            raise UserError(f"stages.{self.name}: needs train and val trials (got {len(train)} and {len(val)}); "
                            "check the dataset's split file")
        images = np.unique(data.image[np.concatenate([train, val])])
        slot = {int(img): k for k, img in enumerate(images)}
        targets = self.targets(data, images, run, pretrained)

        def inputs(split, part):
            x = self.training_eeg(np.ascontiguousarray(data.eeg[split], dtype=np.float32), part)
            return torch.from_numpy(x), torch.tensor([slot[int(i)] for i in data.image[split]])

        x_train, s_train = inputs(train, "train")
        x_val, s_val = inputs(val, "val")
        own = {"unet": list(model.image.unet_params.parameters()) if c.image else [],
               "text": [p for p in model.text.parameters() if p.requires_grad] if c.text else []}
        taken = {id(p) for params in own.values() for p in params}
        groups = [{"params": [p for p in model.parameters() if id(p) not in taken and p.requires_grad], "peak": c.lr},
                  {"params": own["unet"], "peak": c.unet_lr or c.lr},
                  {"params": own["text"], "peak": (c.text.lr if c.text else None) or c.lr}]
        groups = [g for g in groups if g["params"]]
        opt = torch.optim.AdamW(groups, weight_decay=c.weight_decay)
        steps_per_epoch = len(x_train) // c.batch_size or 1
        best, history, start = load_epoch(run, self.name, model, opt, initial={"loss": math.inf})
        run.log(f"{self.name}: training {'+'.join(self.weights)} on {len(train)} trials ({c.train_on}), "
                f"selecting on {len(val)} val trials")

        scheduler = self.noise_scheduler(model)
        consistency = None
        for epoch in progress.track(range(start, c.epochs), f"{self.name}: training", total=c.epochs - start):
            if c.consistency_weight and epoch >= c.consistency_every:
                refresh = epoch - epoch % c.consistency_every
                if consistency is None or consistency["epoch"] != refresh:
                    consistency = self.consistency_targets(model, x_train, refresh, run, pretrained)
            torch.manual_seed(self.seed * 100_003 + epoch)
            model.train()
            order = torch.randperm(len(x_train))
            sums = dict.fromkeys(self.weights, 0.0)
            for i in range(steps_per_epoch):
                step = epoch * steps_per_epoch + i
                for group in opt.param_groups:
                    group["lr"] = group["peak"] * (min(1.0, (step + 1) / c.warmup_steps) if c.warmup_steps else 1.0)
                idx = order[i * c.batch_size:(i + 1) * c.batch_size]
                slots = s_train[idx]
                tokens = model.tokens(x_train[idx])
                losses = {}
                if c.image:
                    context = model.image.context(tokens)
                    drop = torch.rand(len(idx)) < c.cfg_drop
                    cond = torch.where(drop[:, None, None], model.image.null_context, context)
                    losses["diffusion"] = model.image.diffusion_loss(targets["latents"][slots], cond, scheduler)
                    losses["clip"] = ((1 - F.cosine_similarity(model.image.clip_embedding(context),
                                                               targets["clip"][slots])).mean()
                                      if "clip" in targets else torch.zeros(()))
                losses |= text_losses(model, tokens, slots, targets)
                if consistency is not None:
                    batch = {"captions": [consistency["captions"][int(j)] for j in idx], "pair_id": consistency["pair_id"][idx]}
                    if "text_emb" in consistency:
                        batch["text_emb"] = consistency["text_emb"][idx]
                    losses["consistency"] = model.text.loss(model.features(tokens), batch)
                loss = sum(self.weights[k] * v for k, v in losses.items())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                for k, v in losses.items():
                    sums[k] += v.item()
            val = validation_losses(model, x_val, s_val, targets, scheduler, c.batch_size, self.seed)
            val_loss = sum(self.weights[k] * v for k, v in val.items())
            if not math.isfinite(val_loss):
                raise UserError(f"stages.{self.name}: val loss is {val_loss} after epoch {epoch} (training "
                                f"diverged); lower stages.{self.name}.lr or add warmup_steps")
            history.append({"epoch": epoch, **{f"train_{k}": v / steps_per_epoch for k, v in sums.items()},
                            **{f"val_{k}": v for k, v in val.items()}, "val_loss": val_loss})
            run.log(f"{self.name}: epoch {epoch} " + " ".join(f"{k} {v:.4f}" for k, v in history[-1].items() if k != "epoch"))
            if val_loss < best["loss"]:
                best = {"loss": val_loss, "epoch": epoch, "state": {k: v.clone() for k, v in model.state_dict().items()}}
            save_epoch(run, self.name, model, opt, best, {"epoch": epoch, "history": history})

        model.load_state_dict(best["state"])
        run.save_checkpoint(self.name, model.state_dict(), {
            "selected_on": "val", "best_epoch": best["epoch"], "val_loss": best["loss"], "history": history,
            "image_size": self.image_size(model.image.pipe) if c.image else None, "train_on": c.train_on})
        run.drop_checkpoint(self.name, resume=True)
        run.log(f"{self.name}: selected epoch {best['epoch']} on val (loss {best['loss']:.4f})")
        return model

    def consistency_targets(self, model, x_train, epoch: int, run, pretrained) -> dict:
        """The captioner's caption of one image generated per train trial by the model as it is at the start of
        ``epoch`` (``consistency_steps`` sampling steps), kept in ``samples/<stage>_consistency_epoch<epoch>.json``
        (so a resumed run reads the same ones); with CLIP text embeddings for a retrieval head."""
        import json

        import torch

        from eegbench.evaluate.judges import clip_text_embeddings

        name = f"samples/{self.name}_consistency_epoch{epoch}.json"
        if (run.path / name).is_file():
            captions = json.loads((run.path / name).read_text())
        else:
            images = self.sample_images(model, x_train.numpy(), samples=1, steps=self.config.consistency_steps)
            captions = pretrained.captioner().caption(images[:, 0])
            run.write_json(name, captions)
            run.log(f"{self.name}: captioned {len(captions)} generated train images for the consistency loss")
        ids = {text: k for k, text in enumerate(dict.fromkeys(captions))}
        out = {"epoch": epoch, "captions": captions, "pair_id": torch.tensor([ids[t] for t in captions])}
        if self.config.text.kind == "retrieval":
            clip_model, _, tokenizer = pretrained.clip()
            out["text_emb"] = torch.from_numpy(clip_text_embeddings(clip_model, tokenizer, captions))
        return out

    @staticmethod
    def noise_scheduler(model):
        """The forward process the UNet was trained on (None without an image head)."""
        from diffusers import DDPMScheduler

        return DDPMScheduler.from_config(model.image.pipe.scheduler.config) if model.image is not None else None

    def targets(self, data, images: np.ndarray, run, pretrained) -> dict:
        """Per train/val stimulus (in ``images`` order): VAE latents and CLIP image embeddings for the image
        head; captions and their CLIP text embeddings for the text losses."""
        import torch

        from eegbench.evaluate.judges import clip_text_embeddings

        c, out = self.config, {}
        first = [int(np.flatnonzero(data.image == i)[0]) for i in images]
        if c.image:
            pipe = pretrained.sd()
            size = self.image_size(pipe)
            paths = [data.image_path(i) for i in first]
            run.log(f"{self.name}: encoding {len(images)} train/val stimuli at {size} px")
            out["latents"] = encode_latents(pipe, paths, size)
            if c.clip_weight:
                out["clip"] = torch.from_numpy(pretrained.clip_image_embeddings(paths))
        if c.text or c.eeg_text_weight:
            out["captions"] = data.captions_of(np.array(first))
        if c.eeg_text_weight or (c.text and c.text.kind == "retrieval"):
            clip_model, _, tokenizer = pretrained.clip()
            out["text_emb"] = torch.from_numpy(clip_text_embeddings(clip_model, tokenizer, out["captions"]))
        return out

    def predict(self, model, eeg) -> dict:
        """``{"images": uint8 [trials, samples, 3, H, W], "text": [trials] str}`` (the heads that are on) for
        numpy ``eeg`` [trials, C, T]. Images start from the same seeded noise on every call, so real and control
        predictions are paired; text is free-running generation from the EEG alone."""
        import torch

        from eegbench.train.text import generate_text

        out = {}
        if self.config.image:
            out["images"] = self.sample_images(model, eeg)
        if self.config.text:
            model.eval()
            with torch.no_grad():
                features = torch.cat([model.features(model.tokens(torch.from_numpy(np.ascontiguousarray(
                    eeg[i:i + 64], dtype=np.float32)))) for i in range(0, len(eeg), 64)])
            out["text"] = generate_text(model.text, features)
        return out

    def sample_images(self, model, eeg, samples: int | None = None, steps: int | None = None) -> np.ndarray:
        """uint8 ``[trials, samples, 3, H, W]`` sampled with the configured scheduler and guidance (``samples`` and
        ``steps`` default to the configured ones)."""
        import torch
        from diffusers import schedulers

        c = self.config
        samples, steps = samples or c.samples, steps or c.steps
        base = model.image.pipe
        sampler = getattr(schedulers, SCHEDULERS[c.scheduler]).from_config(
            base.scheduler.config, **({"skip_prk_steps": True} if c.scheduler == "plms" else {}))
        pipe = type(base)(**{**base.components, "scheduler": sampler})  # the loaded pipeline stays as it was
        pipe.set_progress_bar_config(disable=True)
        size = self.image_size(pipe)
        generator = torch.Generator().manual_seed(self.seed)
        model.eval()
        out = []
        per_call = max(1, 64 // samples)
        with torch.no_grad():
            for i in progress.track(range(0, len(eeg), per_call), f"{self.name}: sampling",
                                    total=math.ceil(len(eeg) / per_call)):
                x = torch.from_numpy(np.ascontiguousarray(eeg[i:i + per_call], dtype=np.float32))
                context = model.context(x).repeat_interleave(samples, dim=0)
                images = pipe(prompt_embeds=context, negative_prompt_embeds=model.image.null_context.expand_as(context),
                              guidance_scale=c.guidance_scale, num_inference_steps=steps, height=size, width=size,
                              generator=generator, output_type="pt").images
                out.append((images.clamp(0, 1) * 255).round().to(torch.uint8).view(len(x), samples, 3, size, size))
        return torch.cat(out).numpy()

    def prior_predictions(self, model, data, run, pretrained, n: int) -> dict:
        """The prior-only control: a fresh text head trained and run on a constant input (no EEG), ``n`` outputs."""
        import torch

        from eegbench.evaluate.judges import clip_text_embeddings
        from eegbench.train.text import prior_only_text

        c, width = self.config, model.encoder.embed_dim
        torch.manual_seed(self.seed)
        text_embed = None
        if c.text.kind == "retrieval":
            clip_model, _, tokenizer = pretrained.clip()
            text_embed = lambda captions: torch.from_numpy(clip_text_embeddings(clip_model, tokenizer, captions))  # noqa: E731
        return prior_only_text(self.text_head(width, pretrained, data), data, run, f"{self.name}-prior", n,
                               width=width, epochs=c.epochs, batch_size=c.batch_size, lr=c.text.lr or c.lr,
                               seed=self.seed, text_embed=text_embed)


def text_losses(model, tokens, slots, targets: dict) -> dict:
    """The text head's loss and the EEG<->text alignment loss of a batch (the parts that are on)."""
    features, out = model.features(tokens), {}
    if model.text is not None:
        batch = {"captions": [targets["captions"][int(s)] for s in slots], "pair_id": slots}
        if "text_emb" in targets:
            batch["text_emb"] = targets["text_emb"][slots]
        out["text"] = model.text.loss(features, batch)
    if model.text_align is not None:
        out["eeg_text"] = model.alignment_loss(features, targets["text_emb"][slots], slots)
    return out


def encode_latents(pipe, paths, size: int):
    """Scaled VAE latent means ``[N, C, h, w]`` of the images at ``paths``, rendered at ``size`` px."""
    import torch

    from eegbench.data.stimuli import load_pixels

    pixels = torch.from_numpy(load_pixels(paths, size)).float() / 127.5 - 1
    with torch.no_grad():
        latents = torch.cat([pipe.vae.encode(pixels[i:i + 64]).latent_dist.mean for i in range(0, len(pixels), 64)])
    return latents * pipe.vae.config.scaling_factor


def validation_losses(model, eeg, slots, targets: dict, scheduler, batch_size: int, seed: int) -> dict:
    """Mean val losses of the heads that are on: ``diffusion`` (``VAL_TIMESTEPS`` fixed timesteps per trial,
    fixed noise), ``clip`` image alignment (0 without CLIP targets), ``text`` (teacher forced: for selection
    only) and ``eeg_text``."""
    import torch
    import torch.nn.functional as F

    model.eval()
    sums, count = {}, 0
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(0, len(eeg), batch_size):
            s = slots[i:i + batch_size]
            tokens = model.tokens(eeg[i:i + batch_size])
            parts = {}
            if model.image is not None:
                context = model.image.context(tokens)
                parts["diffusion"] = sum(model.image.diffusion_loss(targets["latents"][s], context, scheduler,
                                                                     stratum=(k, VAL_TIMESTEPS)).item()
                                         for k in range(VAL_TIMESTEPS)) / VAL_TIMESTEPS
                parts["clip"] = ((1 - F.cosine_similarity(model.image.clip_embedding(context), targets["clip"][s])).mean().item()
                                 if "clip" in targets else 0.0)
            parts |= {k: v.item() for k, v in text_losses(model, tokens, s, targets).items()}
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v * len(s)
            count += len(s)
    return {k: v / count for k, v in sums.items()}

