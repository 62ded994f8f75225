"""Offline Hugging Face tokenizers for umT5 (T5EncoderModel) and XLM-R (CLIPModel), written with the
tokenizers library: AutoTokenizer loads them without network or sentencepiece models."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path


def _unigram_vocab(specials: Sequence[str]) -> list[tuple[str, float]]:
    """Special tokens, then single characters with and without the "▁" word mark.

    ASCII, Latin-1 letters and the CJK block (20,992 characters) cover the
    prompts the pipeline sends (upstream's defaults are Chinese); anything else
    becomes <unk>. All ids stay below the real vocab sizes, so the embedding
    tables of the full-size encoders accept them.
    """
    chars = [chr(c) for c in range(0x21, 0x7F)]
    chars += [chr(c) for c in range(0xC0, 0x100)]
    chars += [chr(c) for c in range(0x4E00, 0xA000)]
    vocab = [(tok, 0.0) for tok in specials]
    vocab.append(("\u2581", -2.0))
    vocab += [("\u2581" + c, -8.0) for c in chars[:94]]  # word-initial ASCII
    vocab += [(c, -10.0) for c in chars]
    return vocab


def write_tokenizer(out: Path, kind: str) -> None:
    """A tokenizers-library Unigram model saved in Hugging Face format.

    ``AutoTokenizer.from_pretrained(out)`` reads tokenizer_config.json's
    ``tokenizer_class`` and builds the fast tokenizer from tokenizer.json
    alone: no sentencepiece model, no network, no config.json.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    if kind == "umt5":
        # umT5 ids: <pad>=0, </s>=1, <unk>=2; encoder input ends with </s>.
        specials = ["<pad>", "</s>", "<unk>"]
        post = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)])
        config = {
            "tokenizer_class": "T5Tokenizer",
            "pad_token": "<pad>",
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "extra_ids": 0,
            "additional_special_tokens": [],
        }
    elif kind == "xlmr":
        # XLM-R ids: <s>=0, <pad>=1, </s>=2, <unk>=3; CLIP's pad_id=1 relies on it.
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        post = processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
        )
        config = {
            "tokenizer_class": "XLMRobertaTokenizer",
            "bos_token": "<s>",
            "eos_token": "</s>",
            "sep_token": "</s>",
            "cls_token": "<s>",
            "pad_token": "<pad>",
            "unk_token": "<unk>",
            "mask_token": "<mask>",
        }
    else:
        raise ValueError(f"unknown tokenizer kind {kind!r}")
    vocab = _unigram_vocab(specials)
    tok = Tokenizer(models.Unigram(vocab, unk_id=specials.index("<unk>")))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.post_processor = post
    tok.add_special_tokens(specials)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    config["model_max_length"] = 512
    config["clean_up_tokenization_spaces"] = False
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special_map = {k: v for k, v in config.items() if k.endswith("_token")}
    (out / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2) + "\n")
