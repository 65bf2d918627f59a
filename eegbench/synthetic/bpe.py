"""Byte-pair-encoding merges learned deterministically, for the synthetic world's tokenizers.

The ``tokenizers`` library's ``BpeTrainer`` numbers some symbols in hash-map order, and its merge
ties are broken by those numbers, so the same captions give different merges from one process to
the next (and with them different CLIP, SD and LM weights downstream). Here a tie between equally
frequent pairs goes to the lexicographically smallest pair, so the merges depend on the words alone.
The merges and vocabularies load into ``tokenizers``/``transformers`` tokenizers as usual.
"""

from __future__ import annotations

from collections import Counter


def learn_merges(words: Counter, alphabet: list[str], *, suffix: str = "", min_frequency: int = 1,
                 max_merges: int | None = None) -> list[tuple[str, str]]:
    """Merges, most frequent pair first, learned on ``words`` (a word -> count table of pre-tokenised words).

    Each word starts as its symbols (characters of ``alphabet``; ``suffix`` appended to the last, as
    CLIP's ``</w>``); the most frequent adjacent pair (ties: the smallest pair as strings) is merged
    everywhere, until no pair occurs ``min_frequency`` times or ``max_merges`` merges are learned.
    """
    known = set(alphabet)
    unknown = sorted({c for word in words for c in word} - known)
    if unknown:
        raise ValueError(f"characters outside the alphabet: {unknown[:5]}")
    corpus = [([*word[:-1], word[-1] + suffix], count) for word, count in sorted(words.items()) if word]
    merges: list[tuple[str, str]] = []
    while max_merges is None or len(merges) < max_merges:
        pairs: Counter = Counter()
        for symbols, count in corpus:
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        if pairs[best] < min_frequency:
            break
        merges.append(best)
        joined = best[0] + best[1]
        for symbols, _ in corpus:
            i = 0
            while i < len(symbols) - 1:
                if (symbols[i], symbols[i + 1]) == best:
                    symbols[i:i + 2] = [joined]
                i += 1
    return merges


def word_counts(texts: list[str], normalizer, pre_tokenizer) -> Counter:
    """Pre-tokenised words of ``texts`` with their counts, as a ``tokenizers`` trainer would see them."""
    counts: Counter = Counter()
    for text in texts:
        normalized = normalizer.normalize_str(text) if normalizer is not None else text
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalized))
    return counts
