"""Poolers: how token states become one sentence embedding.

``cls`` and ``avg`` are sentence-transformers' own ``Pooling`` modes. ``mask`` is
the paper's prompt pooler: the sentence is wrapped in a template ending in the
tokenizer's mask token and the mask position's hidden state is the embedding.
It needs two custom modules (the template is applied at tokenisation, the mask
state is picked after the transformer); both save into the model folder, so
``SentenceTransformer(path)`` reloads them while ``datagen`` is importable.
"""

from __future__ import annotations

from typing import Any, Literal

from sentence_transformers.base.modules import Module, Transformer
from sentence_transformers.sentence_transformer.modules import Pooling
from torch import Tensor

from datagen.errors import ConfigError

PoolerName = Literal["cls", "avg", "mask"]
# The paper's templates (method.md §3); the second one gives plain rows a second, different view.
MASK_TEMPLATE = 'this sentence : " {sentence} " means {mask} .'
MASK_TEMPLATE_ALT = 'this sentence of " {sentence} " means {mask} .'
_POOLING_MODES = {"cls": "cls", "avg": "mean"}


class PromptTransformer(Transformer):
    """A ``Transformer`` that wraps every text input in a template before tokenising.

    The sentence is truncated in tokens *before* wrapping, so truncation never cuts the mask token off.
    """

    config_keys = [*Transformer.config_keys, "template"]

    def __init__(self, model_name_or_path: str, *, template: str = MASK_TEMPLATE, **kwargs: Any) -> None:
        super().__init__(model_name_or_path, **kwargs)
        self.template = template

    def wrap(self, texts: list[str], templates: list[str | None] | None = None, max_length: int | None = None) -> list[str]:
        """Fill each text's template (None: the saved one), keeping room for the template's tokens.

        Args:
            texts: Sentences.
            templates: One template per text (``{sentence}`` and ``{mask}`` fields), or None for all default.
            max_length: Token budget of the wrapped input; default the module's ``max_seq_length``.
        """
        mask = self.tokenizer.mask_token
        limit = max_length or self.max_seq_length or 512
        wrapped = []
        for text, template in zip(texts, templates or [None] * len(texts)):
            template = template or self.template
            overhead = len(self.tokenizer.tokenize(template.format(sentence="", mask=mask))) + 2  # + [CLS] [SEP]
            tokens = self.tokenizer.tokenize(text)
            if len(tokens) > limit - overhead:
                text = self.tokenizer.convert_tokens_to_string(tokens[: max(1, limit - overhead)])
            wrapped.append(template.format(sentence=text, mask=mask))
        return wrapped

    def preprocess(self, inputs, prompt=None, templates: list[str | None] | None = None, **kwargs):  # type: ignore[override]
        if inputs and all(isinstance(item, str) for item in inputs):
            inputs = self.wrap(list(inputs), templates, kwargs.get("max_length"))
        return super().preprocess(inputs, prompt=prompt, **kwargs)


class MaskPooling(Module):
    """Sentence embedding = hidden state at the (single) mask token of each input."""

    config_keys = ["mask_token_id"]

    def __init__(self, mask_token_id: int) -> None:
        super().__init__()
        self.mask_token_id = mask_token_id

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        token_embeddings: Tensor = features["token_embeddings"]  # (batch_size, seq_len, hidden)
        is_mask = features["input_ids"] == self.mask_token_id  # (batch_size, seq_len)
        if not bool((is_mask.sum(dim=1) == 1).all()):
            raise ConfigError("mask pooler: every input needs exactly one mask token; use PromptTransformer inputs")
        features["sentence_embedding"] = token_embeddings[is_mask]  # (batch_size, hidden)
        return features

    def get_sentence_embedding_dimension(self) -> None:
        return None  # same as the transformer's hidden size

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.save_config(output_path)


def build_modules(base_path: str, *, pooler: PoolerName, max_seq_length: int, local_files_only: bool) -> list:
    """Build the (transformer, pooler) module pair for training a fresh encoder.

    Args:
        base_path: Local folder or hub id of the transformer weights.
        pooler: ``cls``, ``avg`` or ``mask``.
        max_seq_length: Truncation length in tokens (the paper: 32).
        local_files_only: Never contact the hub (local folders).

    Returns:
        Modules for ``SentenceTransformer(modules=...)``.

    Raises:
        ConfigError: an unknown pooler, or ``mask`` with a tokenizer that has no mask token.
    """
    hub = {"local_files_only": local_files_only}
    if pooler == "mask":
        transformer: Transformer = PromptTransformer(
            base_path, max_seq_length=max_seq_length, model_kwargs=hub, processor_kwargs=hub, config_kwargs=hub
        )
        if transformer.tokenizer.mask_token_id is None:
            raise ConfigError(f"pooler 'mask' needs a tokenizer with a mask token; {base_path} has none, use cls or avg")
        head: Module = MaskPooling(int(transformer.tokenizer.mask_token_id))
        return [transformer, head]
    if pooler not in _POOLING_MODES:
        raise ConfigError(f"unknown pooler '{pooler}'; choose one of cls, avg, mask")
    transformer = Transformer(
        base_path, max_seq_length=max_seq_length, model_kwargs=hub, processor_kwargs=hub, config_kwargs=hub
    )
    head = Pooling(transformer.get_embedding_dimension(), pooling_mode=_POOLING_MODES[pooler])
    return [transformer, head]
