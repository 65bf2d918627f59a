"""Text scores against hand-computed values, and text heads that generate free-running only."""

import numpy as np
import pytest
import torch

from eegbench.evaluate import text
from eegbench.evaluate import text_definitions as td
from eegbench.evaluate.report import metric_record

CAPTIONS = ["a large red circle on the left", "a small blue square at the top", "a tilted green star on the right",
            "a red circle, small, at the bottom", "a blue square on a grey background"] * 4


def test_sentence_rouge_and_bleu_match_hand_computed_values():
    assert td.rouge_n("a red circle", "a red square", 1) == pytest.approx(2 / 3)
    assert td.rouge_n("a red circle", "a red square", 2) == pytest.approx(1 / 2)
    assert td.rouge_l("a red circle x", "a big red circle") == pytest.approx(2 * 3 / 8)
    assert td.rouge_l("", "a red circle") == 0.0
    # 4 of 6 hypothesis words in the reference; hypothesis longer than the reference: no brevity penalty
    hyps, refs = ["A red circle, on the left!", CAPTIONS[0], "   "], ["a red circle at left", CAPTIONS[0].upper(), "a red circle"]
    bleu = td.bleu("sentence", hyps, refs)
    assert bleu["bleu1"]["per_trial"] == pytest.approx([4 / 6, 1.0, 0.0])
    assert bleu["bleu4"]["per_trial"][1:] == pytest.approx([1.0, 0.0])


def test_chance_pairs_every_output_with_another_trial():
    shift = text.mismatched(50, seed=3)
    assert sorted(shift) == list(range(50)) and not np.any(shift == np.arange(50))


def test_empty_outputs_are_counted_and_scored_zero():
    out = text.text_metrics("rouge", "sentence", ["", "a red circle", " "], ["a red circle"] * 3, seed=0)["rougeL"]
    assert list(out["per_trial"]) == [0.0, 1.0, 0.0] and out["definition"] == "sentence"
    assert out["note"].startswith("sentence: ") and out["note"].endswith("; 2 of 3 outputs empty (scored 0)")


def test_continuous_metric_records_measured_chance_and_gap_to_each_control():
    rng = np.random.default_rng(0)
    real = rng.normal(0.6, 0.1, 200)
    record = metric_record("text_similarity", "test", {"per_trial": real, "chance_per_trial": real - 0.2},
                           {"noise_eeg": {"per_trial": real - 0.1}}, seed=0)
    assert record["chance"] == pytest.approx(real.mean() - 0.2)
    assert record["chance_ci"][0] < record["chance"] < record["chance_ci"][1]
    control = record["controls"][0]
    assert control["gap"] == pytest.approx(0.1) and control["gap_ci"] == pytest.approx([0.1, 0.1])
    assert control["p_vs_control"] < 0.001


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    """A randomly initialised tiny GPT-2 with a BPE tokenizer learnt on CAPTIONS (the world LM's recipe)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from eegbench.synthetic.foundation import build_lm_tokenizer

    tokenizer = build_lm_tokenizer(CAPTIONS, tmp_path_factory.mktemp("lm"))
    eot = tokenizer.eos_token_id
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=64,
                                       bos_token_id=eot, eos_token_id=eot, pad_token_id=eot))
    return model.eval().requires_grad_(False), tokenizer


def test_generation_is_free_running_never_teacher_forced(lm):
    """Every token the LM reads after the EEG prefix is its own previous argmax: no reference enters."""
    from eegbench.models.text_heads import PrefixLMHead

    model, tokenizer = lm
    torch.manual_seed(0)
    head = PrefixLMHead(8, model, tokenizer, prefix_tokens=3, max_new_tokens=6).eval()
    for p in head.project.parameters():  # large weights, so the prefix steers away from immediate end of text
        torch.nn.init.normal_(p, std=2.0)
    calls = []
    hook = model.register_forward_hook(lambda m, args, kwargs, out: calls.append((kwargs, out.logits)), with_kwargs=True)
    try:
        outputs = head.generate(torch.randn(2, 8))
    finally:
        hook.remove()
    assert len(calls) >= 2 and all(kwargs.get("labels") is None for kwargs, _ in calls)
    first, _ = calls[0]
    assert first.get("input_ids") is None or first["input_ids"].shape[1] == 0
    assert first["inputs_embeds"].shape[:2] == (2, 3)  # the prefix alone (no prompt)
    for (kwargs, _), (_, previous_logits) in zip(calls[1:], calls[:-1]):
        fed = kwargs["input_ids"][:, -1]
        assert torch.equal(fed, previous_logits[:, -1].argmax(-1)), "a token not chosen by the model was fed back"
    assert len(outputs) == 2 and all(isinstance(o, str) for o in outputs)


def test_beam_search_and_prompts_decode_to_strings(lm):
    from eegbench.models.text_heads import PrefixLMHead

    model, tokenizer = lm
    head = PrefixLMHead(8, model, tokenizer, prefix_tokens=2, max_new_tokens=4, num_beams=3).eval()
    out = head.generate(torch.randn(3, 8), ["red circle:", "", "blue square:"])
    assert len(out) == 3 and all(isinstance(o, str) for o in out)


def test_teacher_forced_loss_falls_when_the_head_trains(lm, tmp_path):
    """Training (teacher forced) moves only the projector; the LM stays as loaded."""
    from eegbench.models.text_heads import PrefixLMHead
    from eegbench.train.text_head import fit_text_head

    model, tokenizer = lm
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(0)
    head = PrefixLMHead(4, model, tokenizer, prefix_tokens=2)
    labels = torch.arange(len(CAPTIONS)) % 5
    data = {"features": torch.nn.functional.one_hot(labels, 4 + 1)[:, :4].float(), "captions": CAPTIONS}

    from eegbench.track.store import Run

    info = fit_text_head(head, data, data, epochs=15, batch_size=8, lr=1e-2, seed=0, run=Run(tmp_path), name="t",
                         lr_key="lr")
    history = info["history"]
    assert history[-1]["train_text"] < history[0]["train_text"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(k.startswith("lm.") for k in head.state_dict())


def test_retrieval_head_outputs_a_candidate():
    from eegbench.models.text_heads import RetrievalTextHead

    torch.manual_seed(0)
    candidates = sorted(set(CAPTIONS))
    head = RetrievalTextHead(6, candidates, torch.randn(len(candidates), 5))
    assert set(head.generate(torch.randn(10, 6))) <= set(candidates)


def test_a_transformers_blip_folder_captions_through_the_real_loading_code(tmp_path):
    """A tiny random BLIP saved with save_pretrained (the layout of blip-image-captioning-base) loads and captions."""
    from transformers import BertTokenizerFast, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    from eegbench.models.pretrained.captioner import check_captioner_folder, load_captioner

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "circle", "blue", "square"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"), bos_token="[CLS]")
    processor = BlipProcessor(BlipImageProcessor(size={"height": 16, "width": 16}), tokenizer)
    torch.manual_seed(0)
    small = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}
    config = BlipConfig(text_config={**small, "vocab_size": len(words), "bos_token_id": 2, "sep_token_id": 3, "pad_token_id": 0},
                        vision_config={**small, "image_size": 16, "patch_size": 8}, projection_dim=16)
    folder = tmp_path / "blip"
    BlipForConditionalGeneration(config).save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    assert check_captioner_folder(folder) == "blip"
    captioner = load_captioner(folder)
    captioner.max_new_tokens = 4
    captions = captioner.caption(np.random.default_rng(0).integers(0, 255, (3, 3, 16, 16), dtype=np.uint8))
    assert len(captions) == 3 and all(isinstance(c, str) for c in captions)
    assert all(set(c.split()) <= set(words[5:]) for c in captions)
