"""Deterministic BPE for the synthetic world's tokenizers."""

from collections import Counter

import pytest

from eegbench.synthetic.bpe import learn_merges

CAPTIONS = ["a red circle on the left", "a blue square on the right", "a red square", "the blue circle"]


def test_most_frequent_pair_first_and_ties_to_the_smallest_pair():
    # "ab" x3 and "cd" x3 tie, then "ab"+"x" (x2): the tie goes to ("a", "b")
    merges = learn_merges(Counter({"abx": 2, "ab": 1, "cd": 3}), list("abcdx"))
    assert merges[:3] == [("a", "b"), ("c", "d"), ("ab", "x")]
    # the same words in another order give the same merges
    assert learn_merges(Counter({"cd": 3, "ab": 1, "abx": 2}), list("abcdx")) == merges


def test_suffix_min_frequency_and_cap():
    assert learn_merges(Counter({"ab": 1}), list("ab"), suffix="</w>") == [("a", "b</w>")]
    assert learn_merges(Counter({"ab": 1, "cd": 2}), list("abcd"), min_frequency=2) == [("c", "d")]
    assert len(learn_merges(Counter({"abcdef": 1}), list("abcdef"), max_merges=2)) == 2
    with pytest.raises(ValueError, match="outside the alphabet"):
        learn_merges(Counter({"az": 1}), list("ab"))


def test_tokenizers_round_trip_the_captions(tmp_path):
    from eegbench.synthetic.foundation import build_lm_tokenizer, build_tokenizer

    clip = build_tokenizer(CAPTIONS, tmp_path / "clip")
    lm = build_lm_tokenizer(CAPTIONS * 2, tmp_path / "lm")
    assert clip.tokenize("a red circle") == ["a</w>", "red</w>", "circle</w>"]  # every train word is one token
    for caption in CAPTIONS:
        assert lm.decode(lm(caption).input_ids) == caption
    assert lm.convert_tokens_to_ids("<|endoftext|>") == lm.eos_token_id == 0
