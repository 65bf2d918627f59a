"""The joint stage: one EEG encoder, DreamDiffusion's image head and/or a text head, trained jointly.

Image head (``image: true``, DreamDiffusion). The EEG encoder (the MAE-ViT an ``msm`` stage hands
on, the EEG side of a ``contrastive`` stage's EEG-CLIP, or a fresh one of the registered kind
``encoder`` names, MAE-ViT by default; a feature encoder's pooled vector is one token) feeds an
:class:`~eegbench.models.image_head.EEGConditioner` whose output replaces the caption's context in
a frozen Stable Diffusion pipeline. Trained: the encoder, the conditioner and the UNet's
cross-attention layers with the norms before them; the VAE, text encoder and the rest of the UNet
stay frozen. Loss per batch: the usual noise-prediction MSE on the stimulus's VAE
latent plus ``clip_weight x (1 - cos(clip_head(context), CLIP image embedding of the stimulus))``.

With ``cfg_drop > 0`` that fraction of contexts is replaced by the empty caption's, so sampling
can use classifier-free guidance against it (the paper uses neither: ``cfg_drop: 0``,
``guidance_scale: 1``). The checkpoint kept is the epoch with the lowest validation diffusion loss
plus ``clip_weight`` x its CLIP alignment loss (fixed noise and timesteps per val trial): the
training objective on held-out trials; test trials are never seen. It trains through the one loop
(``train.loop``), checkpointing trainable weights only, so an interrupted run resumes to the same result.
``predict`` samples ``samples`` images per trial with the named diffusers scheduler.

Text head (``text:``, the multitask design). The encoder's mean token feeds a text head
(``models.text_heads``): a frozen causal LM behind learned prefix tokens (cross-entropy, teacher
forced in training; free-running generation in ``predict``) or retrieval of the nearest candidate
caption in CLIP text space (InfoNCE). ``eeg_text_weight`` adds InfoNCE between the pooled EEG
features and the caption's CLIP text embedding. The joint objective is the weighted sum of the
losses of the heads that are on, in training and in validation selection alike; ``image: false``
gives the text-only model and no ``text`` the image-only one. ``train_comparison`` trains the
same text head on a constant input: the prior-only control (the language prior, no EEG).
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from eegbench import progress, registry, runtime
from eegbench.config import StrictModel, added
from eegbench.errors import UserError
from eegbench.train.loop import Optim, Selection, Task, fit
from eegbench.train.stage import Stage
from eegbench.train.text_head import Decoding

SCHEDULERS = {  # config name -> diffusers class; "plms" is PNDM without its Runge-Kutta warm-up, as in SD
    "plms": "PNDMScheduler",
    "ddim": "DDIMScheduler",
    "dpm": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
}
VAL_TIMESTEPS = 4  # fixed timesteps per val trial in the selection loss


class TextHeadConfig(Decoding):
    """The text head, a registered head of role ``text``: ``prefix-lm`` (prefix tokens before a causal LM) or
    ``retrieval`` (nearest candidate)."""

    kind: str = "prefix-lm"
    weight: float = Field(1.0, gt=0)  # of its loss (LM cross-entropy or InfoNCE) in the joint objective
    lr: float | None = Field(None, gt=0)  # learning rate of the head's own parameters; default: the stage's lr
    candidates: Literal["train_captions", "class_phrasings"] = "train_captions"  # retrieval: the output set

    @field_validator("kind")
    @classmethod
    def _text_head(cls, name: str) -> str:
        if registry.heads.role(name) != "text":  # read from the registration: no head module is imported
            texts = sorted(e.name for e in registry.heads if e.role == "text")
            raise ValueError(f"{name!r} is not a registered text head; use one of {', '.join(texts)}")
        current = registry.heads.renamed.get(name, name)
        if current != name:
            warnings.warn(f"text.kind: {name!r} is now called {current!r}; write kind: {current} (same runs, same ids)",
                          FutureWarning, stacklevel=2)
        return current


class JointStage(Stage):
    """EEG -> images (Stable Diffusion, DreamDiffusion) and/or captions from one encoder; chosen on val."""

    hands_on = "joint"

    class Config(StrictModel):
        encoder: str | None = added(None)  # a fresh encoder of this registered kind, first in the chain; unset: the
        # encoder the stage before hands on, else a fresh MAE-ViT (the no-msm ablations)
        encoder_args: dict = {}  # the fresh encoder's arguments
        init_from: str | None = added(None)  # a run (folder, or suite/variant) whose encoder weights start the fresh one
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

        @field_validator("encoder")
        @classmethod
        def _registered(cls, name: str | None) -> str | None:
            if name is not None and name not in registry.encoders:
                raise ValueError(registry.encoders.unknown(name))
            return name

        @model_validator(mode="after")
        def _some_head(self):
            if not self.image and self.text is None:
                raise ValueError("image is false and text is unset: the stage would train no head; enable one")
            if self.consistency_weight and not (self.image and self.text):
                raise ValueError("consistency_weight needs both heads (image: true and a text head); set it to 0")
            return self

    @property
    def comparisons(self) -> tuple[str, ...]:
        return ("prior_only",) if self.config.text else ()

    @property
    def consumes(self) -> tuple[str | None, ...]:
        """Any encoder (a feature encoder's pooled vector becomes one token) or an EEG-CLIP model's EEG side;
        nothing when ``encoder`` names the one to build."""
        return (None,) if self.config.encoder else (None, "feature-encoder", "eeg-text")

    @property
    def produces(self) -> tuple[str, ...]:
        return ("images",) * self.config.image + ("text",) * (self.config.text is not None)

    @property
    def requires(self) -> tuple[str, ...]:
        """Stimulus images for the image head and CLIP alignment; captions for a text head."""
        return ("eeg", "splits", "images") + ("captions",) * (self.config.text is not None)

    @property
    def needs(self) -> tuple[str, ...]:
        """What its heads need (SD for images, the LM for a prefix-LM, CLIP for retrieval), CLIP for image or
        EEG-text alignment, the captioner for the consistency loss."""
        c, text = self.config, self.config.text
        heads = ("sd-image",) * c.image + ((text.kind,) if text else ())
        need = {n for h in heads for n in registry.heads.get(h).needs}
        need |= {"clip"} if (c.image and c.clip_weight) or c.eeg_text_weight else set()
        need |= {"captioner"} if c.consistency_weight else set()
        return tuple(sorted(need))

    @property
    def text_on_clip(self) -> bool:
        """Whether the text head trains on the captions' CLIP text embeddings (it needs CLIP: retrieval)."""
        return self.config.text is not None and "clip" in registry.heads.get(self.config.text.kind).needs

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
        """The trainable :class:`JointModel` around the encoder handed on (an EEG-CLIP model: its EEG side), or
        a fresh one; a feature encoder gives the heads one token, its pooled vector."""
        import torch

        from eegbench.models.joint import JointModel
        from eegbench.models.tokens import as_token_encoder

        c = self.config
        torch.manual_seed(self.seed)
        if encoder is None:
            encoder = self.make(registry.encoders.get(c.encoder or "mae-vit"), n_chans=n_chans, n_times=n_times,
                                **c.encoder_args)
        elif hasattr(encoder, "eeg_encoder"):
            encoder = encoder.eeg_encoder()
        if hasattr(encoder, "drop_decoder"):
            encoder.drop_decoder()  # pretraining's decoder is not part of the model
        encoder = as_token_encoder(encoder)
        image = None
        if c.image:
            pipe = pretrained.sd()
            clip_dim = pretrained.clip()[0].visual.output_dim if c.clip_weight else pipe.unet.config.cross_attention_dim
            image = registry.heads.get("sd-image")(pipe, encoder.n_tokens, encoder.embed_dim, clip_dim,
                                                   time_branch=c.time_branch)
        text = self.text_head(encoder.embed_dim, pretrained, data) if c.text else None
        align = pretrained.clip()[0].text_projection.shape[1] if c.eeg_text_weight else None
        return JointModel(encoder, image, text, align)

    def text_head(self, width: int, pretrained, data):
        """A fresh text head of the configured kind over features of ``width``."""
        return registry.heads.get(self.config.text.kind).build(width, self.config.text, pretrained, data)

    def run(self, data, run, model=None, pretrained=None):
        """Train on the train split, select on val; return the selected :class:`JointModel`."""
        from eegbench.models.tokens import unpooled

        c = self.config
        n_chans, n_times = data.eeg.shape[1:]
        fresh = model is None
        model = self.build(n_chans, n_times, pretrained, data, encoder=model)
        if fresh:
            self.initialise(unpooled(model.encoder), run)
        checkpointing = runtime.current().config.gradient_checkpointing
        model.encoder.gradient_checkpointing = checkpointing
        if c.image and checkpointing:
            model.image.pipe.unet.enable_gradient_checkpointing()
        fit(model, lambda: self.task(model, data, run, pretrained), run=run, name=self.name, seed=self.seed,
            epochs=c.epochs, selection=Selection("val_loss", "min"),
            optim=Optim(lr=c.lr, weight_decay=c.weight_decay, schedule="constant_with_warmup", warmup=c.warmup_steps,
                        grad_clip=1.0),
            meta={"image_size": self.image_size(model.image.pipe) if c.image else None, "train_on": c.train_on})
        model.encoder.gradient_checkpointing = False
        if c.image and checkpointing:
            model.image.pipe.unet.disable_gradient_checkpointing()
        return model

    def task(self, model, data, run, pretrained) -> Task:
        """The joint objective on train trials (last partial batch dropped); its weighted sum on val trials."""
        import torch
        import torch.nn.functional as F

        from eegbench.models.tokens import unpooled

        c = self.config
        rt = runtime.current()
        train, val = data.splits["train"], data.splits["val"]
        if len(train) < 2 or len(val) == 0:
            raise UserError(f"stages.{self.name}: needs train and val trials (got {len(train)} and {len(val)}); "
                            "check the dataset's split file")
        images = np.unique(data.image[np.concatenate([train, val])])
        slot = {int(img): k for k, img in enumerate(images)}
        targets = {k: v.to(rt.device) if hasattr(v, "to") else v
                   for k, v in self.targets(data, images, run, pretrained).items()}

        def inputs(split, part):
            x = self.training_eeg(np.ascontiguousarray(data.eeg[split], dtype=np.float32), part)
            return torch.from_numpy(x), torch.tensor([slot[int(i)] for i in data.image[split]])

        x_train, s_train = inputs(train, "train")
        x_val, s_val = inputs(val, "val")
        enc = model.encoder
        run.log(f"{self.name}: training {'+'.join(self.weights)} on {len(train)} trials ({c.train_on}), "
                f"selecting on {len(val)} val trials; encoder {type(unpooled(enc)).__name__}, {enc.n_tokens} token(s) "
                f"of width {enc.embed_dim}")
        scheduler = self.noise_scheduler(model)
        consistency: dict = {}

        def start_epoch(model, epoch):
            if c.consistency_weight and epoch >= c.consistency_every:
                refresh = epoch - epoch % c.consistency_every
                if consistency.get("epoch") != refresh:
                    consistency.clear()
                    consistency.update(self.consistency_targets(model, x_train, refresh, run, pretrained))

        def losses(model, batch):
            idx = batch.idx
            slots = s_train[idx].to(rt.device)
            tokens = model.tokens(x_train[idx].to(rt.device))
            out = {}
            if c.image:
                context = model.image.context(tokens)
                drop = batch.draw(torch.rand) < c.cfg_drop
                cond = torch.where(drop[:, None, None], model.image.null_context, context)
                latents = targets["latents"][slots]
                n = scheduler.config.num_train_timesteps
                t = batch.draw(lambda size: torch.randint(n, (size,)))
                noise = batch.draw(torch.randn, *latents.shape[1:])
                out["diffusion"] = model.image.diffusion_loss(latents, cond, scheduler, t=t, noise=noise)
                clip = model.image.clip_embedding(context)
                out["clip"] = ((1 - F.cosine_similarity(clip, targets["clip"][slots])).mean() if "clip" in targets
                               else 0 * clip.sum())  # no CLIP loss, but every parameter in the graph (DDP)
            out |= text_losses(model, tokens, slots, targets, gather=rt.gather_with_grad)
            if consistency:
                part = {"captions": [consistency["captions"][int(j)] for j in idx],
                        "pair_id": consistency["pair_id"][idx].to(rt.device)}
                if "text_emb" in consistency:
                    part["text_emb"] = consistency["text_emb"][idx].to(rt.device)
                out["consistency"] = model.text.loss(model.features(tokens), part, gather=rt.gather_with_grad)
            return out

        def validate(model):
            val_losses = validation_losses(model, x_val, s_val, targets, scheduler, c.batch_size, self.seed)
            return {**{f"val_{k}": v for k, v in val_losses.items()},
                    "val_loss": sum(self.weights[k] * v for k, v in val_losses.items())}

        def groups(model):
            own = {"unet": list(model.image.unet_params.parameters()) if c.image else [],
                   "text": [p for p in model.text.parameters() if p.requires_grad] if c.text else []}
            taken = {id(p) for params in own.values() for p in params}
            return [{"params": [p for p in model.parameters() if id(p) not in taken and p.requires_grad], "lr": c.lr},
                    {"params": own["unet"], "lr": c.unet_lr or c.lr},
                    {"params": own["text"], "lr": (c.text.lr if c.text else None) or c.lr}]

        return Task(losses, validate, n_items=len(x_train), batch_size=c.batch_size, weights=self.weights,
                    param_groups=groups, drop_last=True, start_epoch=start_epoch)

    def consistency_targets(self, model, x_train, epoch: int, run, pretrained) -> dict:
        """The captioner's caption of one image generated per train trial by the model as it is at the start of
        ``epoch`` (``consistency_steps`` sampling steps), kept in ``samples/<stage>_consistency_epoch<epoch>.json``
        (so a resumed run reads the same ones); with CLIP text embeddings for a retrieval head."""
        import json

        import torch

        from eegbench.models.pretrained.clip import clip_text_embeddings

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
        if self.text_on_clip:
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

        from eegbench.models.pretrained.clip import clip_text_embeddings

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
        if c.eeg_text_weight or self.text_on_clip:
            clip_model, _, tokenizer = pretrained.clip()
            out["text_emb"] = torch.from_numpy(clip_text_embeddings(clip_model, tokenizer, out["captions"]))
        return out

    def predict(self, model, eeg) -> dict:
        """``{"images": uint8 [trials, samples, 3, H, W], "text": [trials] str}`` (the heads that are on) for
        numpy ``eeg`` [trials, C, T]. Images start from the same seeded noise on every call, so real and control
        predictions are paired; text is free-running generation from the EEG alone."""
        import torch

        from eegbench.train.text_head import generate_text

        out = {}
        if self.config.image:
            out["images"] = self.sample_images(model, eeg)
        if self.config.text:
            model.eval()
            features = torch.from_numpy(runtime.map_rows(lambda x: model.features(model.tokens(x)), eeg, 64))
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
        rt = runtime.current()
        rows = range(len(eeg))[rt.shard(len(eeg))]
        latent_shape = (pipe.unet.config.in_channels, size // pipe.vae_scale_factor, size // pipe.vae_scale_factor)
        model.eval()
        out = []
        per_call = max(1, 64 // samples)
        with torch.no_grad(), rt.autocast():
            for i in progress.track(range(0, len(rows), per_call), f"{self.name}: sampling",
                                    total=math.ceil(len(rows) / per_call)):
                trials = rows[i:i + per_call]
                x = torch.from_numpy(np.ascontiguousarray(eeg[trials.start:trials.stop], dtype=np.float32)).to(rt.device)
                context = model.context(x).repeat_interleave(samples, dim=0)
                # each trial's starting noise comes from its own seed: the same on one process or many
                latents = torch.cat([torch.randn(samples, *latent_shape, generator=torch.Generator().manual_seed(
                    self.seed * 1_000_003 + j)) for j in trials]).to(rt.device, context.dtype)
                images = pipe(prompt_embeds=context, negative_prompt_embeds=model.image.null_context.expand_as(context),
                              guidance_scale=c.guidance_scale, num_inference_steps=steps, height=size, width=size,
                              latents=latents, output_type="pt").images
                out.append((images.float().clamp(0, 1) * 255).round().to(torch.uint8).view(len(x), samples, 3, size, size)
                           .cpu().numpy())
        shape = (0, samples, 3, size, size)
        return rt.gather_rows(np.concatenate(out) if out else np.zeros(shape, np.uint8))

    def train_comparison(self, name, model, data, run, pretrained, args=None):
        """The prior-only control (``prior_only``): a fresh text head trained on a constant input (no EEG)."""
        import torch

        from eegbench.models.pretrained.clip import clip_text_embeddings
        from eegbench.train.text_head import train_prior_only

        c, width = self.config, model.encoder.embed_dim
        torch.manual_seed(self.seed)
        text_embed = None
        if self.text_on_clip:
            clip_model, _, tokenizer = pretrained.clip()
            text_embed = lambda captions: torch.from_numpy(clip_text_embeddings(clip_model, tokenizer, captions))  # noqa: E731
        return train_prior_only(self.text_head(width, pretrained, data), data, run, f"{self.name}-prior",
                                width=width, epochs=c.epochs, batch_size=c.batch_size, lr=c.text.lr or c.lr,
                                seed=self.seed, text_embed=text_embed,
                                lr_key=f"stages.{self.name}.text.lr" if c.text.lr else f"stages.{self.name}.lr")


def text_losses(model, tokens, slots, targets: dict, gather=None) -> dict:
    """The text head's loss and the EEG<->text alignment loss of a batch (the parts that are on); ``gather``
    makes in-batch contrastive losses see the global batch (``Runtime.gather_with_grad``)."""
    features, out = model.features(tokens), {}
    if model.text is not None:
        batch = {"captions": [targets["captions"][int(s)] for s in slots], "pair_id": slots}
        if "text_emb" in targets:
            batch["text_emb"] = targets["text_emb"][slots]
        out["text"] = model.text.loss(features, batch, gather=gather)
    if model.text_align is not None:
        out["eeg_text"] = model.alignment_loss(features, targets["text_emb"][slots], slots, gather=gather)
    return out


def encode_latents(pipe, paths, size: int):
    """Scaled VAE latent means ``[N, C, h, w]`` of the images at ``paths``, rendered at ``size`` px."""
    import torch

    from eegbench.data.stimuli import load_pixels

    vae = pipe.vae
    pixels = torch.from_numpy(load_pixels(paths, size)).float() / 127.5 - 1
    with torch.no_grad():
        latents = torch.cat([vae.encode(pixels[i:i + 64].to(vae.device, vae.dtype)).latent_dist.mean.float().cpu()
                             for i in range(0, len(pixels), 64)])
    return latents * vae.config.scaling_factor


def validation_losses(model, eeg, slots, targets: dict, scheduler, batch_size: int, seed: int) -> dict:
    """Mean val losses of the heads that are on: ``diffusion`` (``VAL_TIMESTEPS`` fixed timesteps per trial,
    fixed noise), ``clip`` image alignment (0 without CLIP targets), ``text`` (teacher forced: for selection
    only) and ``eeg_text``."""
    import torch
    import torch.nn.functional as F

    rt = runtime.current()
    model.eval()
    sums, count = {}, 0
    with torch.no_grad(), torch.random.fork_rng(devices=[]), rt.autocast():
        torch.manual_seed(seed)
        for i in range(0, len(eeg), batch_size):
            s = slots[i:i + batch_size].to(rt.device)
            tokens = model.tokens(eeg[i:i + batch_size].to(rt.device))
            parts = {}
            if model.image is not None:
                context = model.image.context(tokens)
                latents = targets["latents"][s]
                parts["diffusion"] = sum(model.image.diffusion_loss(latents, context, scheduler, stratum=(k, VAL_TIMESTEPS),
                                                                     noise=torch.randn(latents.shape).to(rt.device)).item()
                                         for k in range(VAL_TIMESTEPS)) / VAL_TIMESTEPS
                parts["clip"] = ((1 - F.cosine_similarity(model.image.clip_embedding(context), targets["clip"][s])).mean().item()
                                 if "clip" in targets else 0.0)
            parts |= {k: v.item() for k, v in text_losses(model, tokens, s, targets).items()}
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v * len(s)
            count += len(s)
    return {k: v / count for k, v in sums.items()}

