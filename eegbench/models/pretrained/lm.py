"""A causal language model loaded with transformers from a local folder (e.g. gpt2, Mistral-7B).

The synthetic world's counterpart is the tiny GPT-2 that ``synthetic.foundation`` trains on the
world's captions. Weights are read as safetensors only (nothing is unpickled).
"""

from __future__ import annotations

from pathlib import Path

from eegbench.errors import UserError

# Per part, the alternative file sets that supply it; a folder needs one complete set of each.
LM_FILES = {
    "config": (("config.json",),),
    "weights": (("model.safetensors",), ("model.safetensors.index.json",)),
    "tokenizer": (("tokenizer.json",), ("vocab.json", "merges.txt"), ("tokenizer.model",)),
}
_FIX = ("pass a transformers causal LM folder (config.json, a tokenizer, model.safetensors) with --lm-weights; "
        "convert .bin weights with save_pretrained(safe_serialization=True)")


def check_lm_folder(folder: Path) -> None:
    """Raise UserError naming the first file a transformers causal-LM folder lacks."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: language model folder not found; {_FIX}")
    for what, options in LM_FILES.items():
        if any(all((folder / f).is_file() for f in files) for files in options):
            continue
        started = next((files for files in options if any((folder / f).is_file() for f in files)), options[0])
        missing = next(f for f in started if not (folder / f).is_file())
        raise UserError(f"{folder / missing}: file not found ({what}); {_FIX}")


def load_lm(folder: Path):
    """``(model, tokenizer)`` of the causal LM in ``folder``: fp32, eval mode, frozen; pad token = eos if unset."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.set_verbosity_error()  # loading bars would bury eegbench's output
    transformers.utils.logging.disable_progress_bar()
    check_lm_folder(folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, use_safetensors=True,
                                                     dtype=torch.float32)
    except Exception as e:  # transformers raises many types for a damaged folder
        detail = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise UserError(f"{folder}: cannot load as a transformers causal LM ({detail}); {_FIX}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(torch.float32).eval().requires_grad_(False), tokenizer
