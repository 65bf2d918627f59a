"""Text heads: pooled EEG features -> a caption, by retrieval or by a causal language model.

Both take features ``[B, in_dim]`` and share one interface: ``loss(features, batch)`` for training
and ``generate(features, prompts)`` for prediction, which never sees a reference caption. They are
registered text heads (``role = "text"``), built by a stage as ``Head.build(in_dim, settings,
pretrained, data)`` from the suite's ``text:`` settings.

- :class:`RetrievalTextHead` projects features into CLIP text space (InfoNCE against the caption's
  CLIP text embedding; trials of one image are positives) and outputs the nearest candidate.
- :class:`PrefixLMHead` maps features to ``prefix_tokens`` embeddings placed before an optional
  text prompt, in front of a frozen causal LM (any ``AutoModelForCausalLM``). Training is teacher
  forced (cross-entropy on the caption's tokens); prediction is free-running generation only
  (greedy, or beam search with ``num_beams > 1``), through ``lm.generate`` on the prefix and prompt.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from eegbench.models.eegclip import contrastive_loss


def text_space_infonce(projected: torch.Tensor, text_emb: torch.Tensor, log_scale: torch.Tensor,
                       pair_id: torch.Tensor, gather=None) -> torch.Tensor:
    """Multi-positive InfoNCE of projected features (normalised here) against unit text embeddings, scaled by
    ``exp(log_scale)`` (at most 100); rows with the same ``pair_id`` are positives. ``gather`` (e.g.
    ``Runtime.gather_with_grad``) turns each process's rows into the global batch first."""
    gather = gather or (lambda x: x)
    logits = gather(F.normalize(projected, dim=-1)) @ gather(text_emb).T * log_scale.exp().clamp(max=100)
    return contrastive_loss(logits, gather(pair_id))


class RetrievalTextHead(nn.Module):
    """Features -> CLIP text space; the output caption is the nearest of ``candidates``."""

    role, needs = "text", ("clip",)  # trained on the captions' CLIP text embeddings

    @classmethod
    def build(cls, in_dim: int, settings, pretrained, data) -> "RetrievalTextHead":
        """Candidates: the train split's captions, or ``a <class name>`` per class (``settings.candidates``)."""
        from eegbench.models.pretrained.clip import clip_text_embeddings

        if settings.candidates == "train_captions":
            candidates = sorted(set(data.captions_of(data.splits["train"])))
        else:
            candidates = [f"a {name}" for name in data.class_names]
        clip_model, _, tokenizer = pretrained.clip()
        return cls(in_dim, candidates, torch.from_numpy(clip_text_embeddings(clip_model, tokenizer, candidates)))

    def __init__(self, in_dim: int, candidates: list[str], candidate_emb: torch.Tensor, temperature: float = 0.07):
        super().__init__()
        self.proj = nn.Linear(in_dim, candidate_emb.shape[1])
        self.scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))
        self.candidates = list(candidates)
        self.register_buffer("bank", F.normalize(candidate_emb.float(), dim=-1), persistent=False)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(features), dim=-1)

    def loss(self, features: torch.Tensor, batch: dict, gather=None) -> torch.Tensor:
        """Multi-positive InfoNCE against ``batch["text_emb"]`` (unit CLIP text embeddings), positives by
        ``batch["pair_id"]``, negatives from the global batch with ``gather``."""
        return text_space_infonce(self.proj(features), batch["text_emb"], self.scale, batch["pair_id"], gather)

    def generate(self, features: torch.Tensor, prompts: list[str] | None = None) -> list[str]:
        best = (self.embed(features) @ self.bank.T).argmax(1)
        return [self.candidates[int(i)] for i in best]


class PrefixLMHead(nn.Module):
    """``prefix_tokens`` learned embeddings from EEG features, then a prompt, then a frozen causal LM.

    The LM stays outside ``state_dict()`` (it is the user's pretrained folder); only the projector trains.
    Conditioning (prefix + prompt) is left-padded and positions count from its first real token, in
    training and generation alike.
    """

    role, needs = "text", ("lm",)

    @classmethod
    def build(cls, in_dim: int, settings, pretrained, data=None) -> "PrefixLMHead":
        """Before the run's frozen LM, shaped and decoding as ``settings`` say (prefix_tokens, decoding, ...)."""
        lm, tokenizer = pretrained.lm()
        return cls(in_dim, lm, tokenizer, settings.prefix_tokens, settings.max_new_tokens,
                   settings.num_beams if settings.decoding == "beam" else 1)

    def __init__(self, in_dim: int, lm, tokenizer, prefix_tokens: int = 4, max_new_tokens: int = 32,
                 num_beams: int = 1):
        super().__init__()
        self.__dict__["lm"] = lm  # not a submodule: frozen, never saved
        self.tokenizer = tokenizer
        width = lm.get_input_embeddings().embedding_dim
        self.prefix_tokens, self.width = prefix_tokens, width
        self.max_new_tokens, self.num_beams = max_new_tokens, num_beams
        self.project = nn.Sequential(nn.Linear(in_dim, width), nn.GELU(), nn.Linear(width, prefix_tokens * width))

    def condition(self, features: torch.Tensor, prompts: list[str] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ``(embeddings [B, P, width], attention mask [B, P])`` of prefix + prompt."""
        prefix = self.project(features).view(len(features), self.prefix_tokens, self.width)
        prompts = prompts or [""] * len(features)
        ids = [self.tokenizer(p, add_special_tokens=False)["input_ids"] if p else [] for p in prompts]
        longest = max(map(len, ids))
        embed = self.lm.get_input_embeddings()
        pad = embed.weight.new_zeros(self.width)
        rows, masks = [], []
        device = prefix.device
        for row_prefix, row_ids in zip(prefix, ids):
            words = (embed(torch.tensor(row_ids, dtype=torch.long, device=device)).to(prefix.dtype) if row_ids
                     else prefix.new_zeros(0, self.width))
            n_pad = longest - len(row_ids)
            rows.append(torch.cat([pad.to(prefix.dtype).expand(n_pad, -1), row_prefix, words]))
            masks.append(torch.tensor([0] * n_pad + [1] * (self.prefix_tokens + len(row_ids)), device=device))
        return torch.stack(rows), torch.stack(masks)

    def loss(self, features: torch.Tensor, batch: dict, gather=None) -> torch.Tensor:
        """Teacher-forced cross-entropy of ``batch["captions"]`` (+ end of text) after prefix and ``batch["prompts"]``:
        each caption's mean over its tokens, then the mean over captions (a per-trial mean: ``gather`` is not
        needed, and the gradient of a batch split across processes or micro-batches is the whole batch's)."""
        cond, cond_mask = self.condition(features, batch.get("prompts"))
        eos = self.tokenizer.eos_token_id
        ids = [self.tokenizer(c, add_special_tokens=False)["input_ids"] + [eos] for c in batch["captions"]]
        longest = max(map(len, ids))
        tokens = torch.tensor([row + [eos] * (longest - len(row)) for row in ids], device=cond.device)
        caption_mask = torch.tensor([[1] * len(row) + [0] * (longest - len(row)) for row in ids], device=cond.device)
        inputs = torch.cat([cond, self.lm.get_input_embeddings()(tokens).to(cond.dtype)], dim=1)
        mask = torch.cat([cond_mask, caption_mask], dim=1)
        labels = torch.cat([torch.full_like(cond_mask, -100), tokens.masked_fill(caption_mask == 0, -100)], dim=1)
        logits = self.lm(inputs_embeds=inputs, attention_mask=mask, position_ids=positions(mask)).logits
        target = labels[:, 1:]
        per_token = F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), target, ignore_index=-100, reduction="none")
        counted = (target != -100).sum(1)
        return (per_token.sum(1) / counted).mean()  # a mean over captions, so batches split anyhow add up exactly

    @torch.no_grad()
    def generate(self, features: torch.Tensor, prompts: list[str] | None = None) -> list[str]:
        """Free-running generation from prefix + prompt alone (greedy, or beam search)."""
        cond, mask = self.condition(features, prompts)
        eos = self.tokenizer.eos_token_id
        out = self.lm.generate(inputs_embeds=cond, attention_mask=mask, max_new_tokens=self.max_new_tokens,
                               do_sample=False, num_beams=self.num_beams, eos_token_id=eos,
                               pad_token_id=self.tokenizer.pad_token_id or eos)
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids counting from each row's first unmasked token (as ``generate`` does for left padding)."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)
