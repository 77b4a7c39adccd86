"""Chat prompts: a list of ``{"role", "content"}`` messages -> the one string a chat model was tuned on.

    prompt = apply_chat_template([{"role": "user", "content": "Hi!"}], contents.chat_template)
    ids = tokenizer.encode(prompt)   # <|im_start|> / <|im_end|> are special tokens: one id each

A model's template is a Jinja2 program stored beside it (``tokenizer.chat_template`` in a
GGUF file, ``chat_template`` in ``tokenizer_config.json``), rendered with the variables
``messages`` and ``add_generation_prompt`` as Hugging Face's ``apply_chat_template`` does:
a sandboxed environment, ``trim_blocks`` and ``lstrip_blocks`` on, plus the helpers
templates commonly call (``raise_exception``, ``tojson``, ``strftime_now``). Jinja2 comes
with PyTorch (one of torch's own requirements). Without a template, the ChatML layout
(``<|im_start|>role\\ncontent<|im_end|>\\n``, used by SmolLM2, Qwen and others) is written
directly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from attnlab.errors import AttnlabError

CHATML_START, CHATML_END = "<|im_start|>", "<|im_end|>"


def apply_chat_template(
    messages: Sequence[Mapping[str, Any]],
    template: str | None,
    add_generation_prompt: bool = True,
    **variables: Any,
) -> str:
    """Render ``messages`` with ``template`` (Jinja2); ChatML when ``template`` is None.

    ``add_generation_prompt`` appends the opening of the assistant's turn, so the model
    continues as the assistant. Extra ``variables`` (e.g. ``bos_token="<s>"``) are passed
    to the template, as transformers passes the tokenizer's special tokens.
    """
    checked = _check_messages(messages)
    if template is None:
        return chatml(checked, add_generation_prompt)
    if not isinstance(template, str) or not template.strip():
        raise AttnlabError(f"A chat template must be a non-empty string (Jinja2). Got {template!r}.")
    try:
        from jinja2 import TemplateError
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        raise AttnlabError(
            "Rendering a chat template needs jinja2: pip install jinja2 "
            "(or pass template=None for the plain ChatML layout)."
        ) from None

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def tojson(value: Any, indent: int | None = None) -> str:
        return json.dumps(value, ensure_ascii=False, indent=indent)

    # trim_blocks / lstrip_blocks: a newline after a {% tag %} is not output, as in transformers,
    # so templates written for it render the same text here.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(template).render(
            messages=checked, add_generation_prompt=add_generation_prompt, **variables
        )
    except TemplateError as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise AttnlabError(f"The chat template failed to render these messages: {first}.") from None


def chatml(messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = True) -> str:
    """ChatML, the chat markup of SmolLM2 (and Qwen, and others), written without a template.

    Each turn is ``<|im_start|>{role}\\n{content}<|im_end|>\\n``; the generation prompt is
    ``<|im_start|>assistant\\n``. Unlike SmolLM2's own template this adds no default system
    message; give one when the model expects it (SmolLM2: "You are a helpful AI assistant
    named SmolLM, trained by Hugging Face").
    """
    turns = [f"{CHATML_START}{m['role']}\n{m['content']}{CHATML_END}\n" for m in _check_messages(messages)]
    if add_generation_prompt:
        turns.append(f"{CHATML_START}assistant\n")
    return "".join(turns)


def _check_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise AttnlabError(
            "messages must be a non-empty list of {'role': ..., 'content': ...} dicts, "
            f"e.g. [{{'role': 'user', 'content': 'Hi!'}}]. Got {messages!r:.80}."
        )
    checked = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str) or not isinstance(
            message.get("content"), str
        ):
            raise AttnlabError(
                f"messages[{index}] must be a dict with string 'role' and 'content'. Got {message!r:.80}."
            )
        checked.append(dict(message))
    return checked
