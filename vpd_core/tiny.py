"""A tiny random Qwen3 model and BPE tokenizer with a chat template, built in milliseconds.

For unit tests, smoke runs and benchmarks' smoke modes: real transformers
classes with random weights, small enough to train on a CPU in well under a second.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_CORPUS = [
    "def solve(a, b):\n    return a + b\n",
    "Read the inputs from stdin and print the answer.",
    "The following is feedback from your unsuccessful earlier attempt: Wrong Answer",
    "Correct solution: print(sum(map(int, input().split())))",
    "Correctly solve the original question. Your earlier attempt passed all tests.",
    "What is 2 + 3? The answer is 5. The final answer is \\boxed{5}.",
    "system user assistant Runtime Error Time Limit Exceeded Test Case Input Output Expected",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 ()[]{}<>=+-*/.,:;!?'\"#_\n",
]


def tiny_tokenizer(vocab_size: int = 300) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    fast.chat_template = CHATML
    return fast


def tiny_model(vocab_size: int, seed: int = 0, eos_token_id: int | None = None, pad_token_id: int | None = None):
    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=40960,  # Qwen3's: room for every preset's teacher contexts
        tie_word_embeddings=True,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )
    return Qwen3ForCausalLM(config)


def write_tiny_model(out_dir: str | Path, seed: int = 0) -> Path:
    """Save a tiny random model + tokenizer as a normal Hugging Face directory."""
    out_dir = Path(out_dir)
    tok = tiny_tokenizer()
    model = tiny_model(len(tok), seed=seed, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir
