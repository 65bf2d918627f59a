"""The n-way judge: an image classifier that names what a generated image shows.

``load_judge(folder)`` reads a folder made by ``synthetic.foundation`` (``config.json`` +
``model.safetensors``: a small CNN over the world's classes) or a torchvision ViT-H/14 folder
(``vit_h_14.pth``, a state dict read with ``torch.load(weights_only=True)``, + ``classes.json``, the
wnids in output order). Both give a ``Judge`` with ``classes`` and ``probs(images)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from eegbench.errors import UserError
from eegbench.io import read_json

JUDGE_CONFIG = "config.json"
JUDGE_WEIGHTS = "model.safetensors"
VIT_H_WEIGHTS = "vit_h_14.pth"
CLASSES_FILE = "classes.json"
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_FIX_JUDGE = (f"pass the judge folder made by synthetic.foundation.ensure_foundation ({JUDGE_CONFIG} + {JUDGE_WEIGHTS}) "
              f"or a folder holding {VIT_H_WEIGHTS} (torchvision vit_h_14 state dict) + {CLASSES_FILE}")


def judge_cnn(n_classes: int, channels: Sequence[int] = (32, 64, 128)):
    """The synthetic judge: per block a 3x3 conv, BN, ReLU and a 2x max-pool; global average; linear."""
    from torch import nn

    layers, c_in = [], 3
    for c in channels:
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
        c_in = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, n_classes))


class Judge:
    """A frozen image classifier: ``probs(images)`` over ``classes`` (wnids, in output order)."""

    def __init__(self, model, classes: list[str], class_names: list[str], image_size: int,
                 mean: Sequence[float], std: Sequence[float], center_crop: bool):
        self.model = model.eval()
        self.classes = classes
        self.class_names = class_names
        self.image_size = image_size
        self.mean, self.std = tuple(mean), tuple(std)
        self.center_crop = center_crop

    def prepare(self, images):
        """[B, 3, H, W] in [0, 1] -> the model's normalised input (resized; centre-cropped for ViT-H)."""
        import torch.nn.functional as F

        x = images.float()
        s = self.image_size
        if self.center_crop:  # torchvision's eval transform: shorter side to s, then centre crop
            h, w = x.shape[-2:]
            scale = s / min(h, w)
            size = (max(s, round(h * scale)), max(s, round(w * scale)))
            if size != (h, w):
                x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
            top, left = (x.shape[-2] - s) // 2, (x.shape[-1] - s) // 2
            x = x[..., top: top + s, left: left + s]
        elif x.shape[-2:] != (s, s):  # area = the box filter the training images were rendered with
            mode = "area" if min(x.shape[-2:]) > s else "bilinear"
            x = F.interpolate(x, size=(s, s), mode=mode, **({} if mode == "area" else {"align_corners": False}))
        mean = x.new_tensor(self.mean)[:, None, None]
        std = x.new_tensor(self.std)[:, None, None]
        return (x.clamp(0, 1) - mean) / std

    def probs(self, images):
        """Class probabilities [B, n_classes] (on the CPU) of images [B, 3, H, W] with values in [0, 1]."""
        import torch

        device = next(self.model.parameters()).device
        with torch.no_grad():
            return self.model(self.prepare(images.to(device))).float().softmax(-1).cpu()


def check_judge_folder(folder: Path) -> str:
    """``"cnn"`` or ``"vit_h"``: which judge ``folder`` holds; UserError naming the missing file otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: judge folder not found; {_FIX_JUDGE}")
    if (folder / JUDGE_CONFIG).is_file():
        return "cnn"
    if (folder / VIT_H_WEIGHTS).is_file():
        return "vit_h"
    raise UserError(f"{folder / JUDGE_CONFIG}: file not found (nor {VIT_H_WEIGHTS}); {_FIX_JUDGE}")


def load_judge(folder: Path) -> Judge:
    """The judge in ``folder``: the synthetic CNN (``config.json``) or torchvision ViT-H/14 (``vit_h_14.pth``)."""
    kind = check_judge_folder(folder)
    return _load_cnn_judge(Path(folder)) if kind == "cnn" else _load_vit_h(Path(folder))


def _load_cnn_judge(folder: Path) -> Judge:
    from safetensors.torch import load_file

    fix = f"delete {folder} and rerun ensure_foundation to retrain the synthetic judge"
    config = read_json(folder / JUDGE_CONFIG, fix)
    keys = ("classes", "class_names", "image_size", "channels", "mean", "std")
    missing = [k for k in keys if not isinstance(config, dict) or k not in config]
    if missing:
        raise UserError(f"{folder / JUDGE_CONFIG}: missing key(s) {', '.join(missing)}; {fix}")
    weights = folder / JUDGE_WEIGHTS
    if not weights.is_file():
        raise UserError(f"{weights}: file not found; {fix}")
    model = judge_cnn(len(config["classes"]), config["channels"])
    try:
        model.load_state_dict(load_file(weights))
    except Exception as e:
        raise UserError(f"{weights}: does not match {JUDGE_CONFIG} ({type(e).__name__}); {fix}") from None
    return Judge(model, list(config["classes"]), list(config["class_names"]), int(config["image_size"]),
                 config["mean"], config["std"], center_crop=False)


def _load_vit_h(folder: Path) -> Judge:
    import torch
    from torchvision.models import vit_h_14

    weights = folder / VIT_H_WEIGHTS
    fix = f"pass the state dict of torchvision's vit_h_14 (e.g. ViT_H_14_Weights.IMAGENET1K_SWAG_E2E_V1) as {VIT_H_WEIGHTS}"
    classes = read_json(folder / CLASSES_FILE, "write the model's output classes as a JSON list of wnids "
                         "(or an object wnid -> name) in output order")
    names = list(classes.values()) if isinstance(classes, dict) else list(classes)
    classes = list(classes)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
        pos = state["encoder.pos_embedding"]
    except Exception as e:
        raise UserError(f"{weights}: not a vit_h_14 state dict ({type(e).__name__}); {fix}") from None
    image_size = 14 * round((pos.shape[1] - 1) ** 0.5)
    n_out = state["heads.head.weight"].shape[0] if "heads.head.weight" in state else -1
    if n_out != len(classes):
        raise UserError(f"{folder / CLASSES_FILE}: lists {len(classes)} classes but {weights.name} has {n_out} outputs; "
                        "list one wnid per output, in output order")
    model = vit_h_14(weights=None, image_size=image_size, num_classes=n_out)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"{weights}: does not fit torchvision's vit_h_14 ({str(e).splitlines()[0]}); {fix}") from None
    return Judge(model, classes, [str(n) for n in names], image_size, _IMAGENET_MEAN, _IMAGENET_STD, center_crop=True)
