"""Chat templates: built-ins render the reference targets (PROTOCOLS.md §8.3), as transformers
renders them (trim_blocks/lstrip_blocks, raise_exception), with the leading BOS stripped."""

from __future__ import annotations

from pathlib import Path

import pytest

from shim.templates import BUILTINS, ChatTemplate, TemplateError, from_tokenizer_config, resolve

SYS_USER = [
    {"role": "system", "content": "You are a helpful assistant"},
    {"role": "user", "content": "Hello"},
]


def render(name: str, messages: list[dict[str, str]]) -> str:
    return resolve(name, base_dir=Path("."), bos_token=None, eos_token=None).render(messages)


TARGETS = [
    pytest.param(
        "chatml",
        SYS_USER,
        "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
        id="chatml",
    ),
    pytest.param(
        "llama-3",
        SYS_USER,
        "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        id="llama-3-bos-stripped",
    ),
    pytest.param(
        "llama-2",
        [*SYS_USER, {"role": "assistant", "content": "Hi there"}, {"role": "user", "content": "Who are you"}],
        "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there </s><s>[INST] Who are you [/INST]",
        id="llama-2",
    ),
    pytest.param(
        "mistral",
        [{"role": "user", "content": "Hello, how are you?"}, {"role": "assistant", "content": "Great."}, {"role": "user", "content": "Bye"}],
        "[INST] Hello, how are you? [/INST]Great.</s>[INST] Bye [/INST]",
        id="mistral",
    ),
    pytest.param("mistral", SYS_USER, "[INST] You are a helpful assistant\n\nHello [/INST]", id="mistral-system-folded"),
    pytest.param(
        "zephyr",
        [{"role": "system", "content": "S"}, {"role": "user", "content": "How many helicopters can a human eat in one sitting?"}],
        "<|system|>\nS</s>\n<|user|>\nHow many helicopters can a human eat in one sitting?</s>\n<|assistant|>\n",
        id="zephyr-trim-blocks",
    ),
    pytest.param(
        "gemma",
        [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there"}],
        "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n<start_of_turn>model\n",
        id="gemma",
    ),
    pytest.param(
        "gemma", SYS_USER, "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n<start_of_turn>model\n", id="gemma-system-merged"
    ),
    pytest.param(
        "phi-3",
        SYS_USER,
        "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\n",
        id="phi-3",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "messages", "expected"), TARGETS)
def test_builtin_targets(name: str, messages: list[dict[str, str]], expected: str) -> None:
    assert render(name, messages) == expected


def test_every_builtin_is_covered() -> None:
    assert {p.values[0] for p in TARGETS} == set(BUILTINS)


def test_raise_exception_surfaces_template_message() -> None:
    with pytest.raises(TemplateError, match="Conversation roles must alternate"):
        render("llama-2", [{"role": "assistant", "content": "x"}])


def test_inline_template_and_tojson_does_not_escape() -> None:
    template = resolve(
        "{{ bos_token }}{% for m in messages %}{{ m | tojson }}{% endfor %}",
        base_dir=Path("."),
        bos_token="<s>",
        eos_token=None,
    )
    assert (
        template.render([{"role": "user", "content": "<b>&"}])
        == '{"role": "user", "content": "<b>&"}'
    )


def test_template_from_file(tmp_path: Path) -> None:
    (tmp_path / "t.jinja").write_text("{% for m in messages %}[{{ m.content }}]{% endfor %}")
    template = resolve("t.jinja", base_dir=tmp_path, bos_token=None, eos_token=None)
    assert template.render([{"role": "user", "content": "x"}]) == "[x]"


def test_sandbox_blocks_attribute_escape() -> None:
    template = ChatTemplate("{{ messages.__class__.__mro__ }}")
    with pytest.raises(TemplateError):
        template.render([])


def test_tokenizer_config_variants() -> None:
    plain = from_tokenizer_config(
        b'{"chat_template": "{{ bos_token }}{{ messages[0].content }}", "bos_token": {"content": "<s>"}, "eos_token": "</s>"}',
        jinja=None,
        origin="hub:x",
    )
    assert plain is not None
    assert plain.render([{"role": "user", "content": "hi"}]) == "hi"
    assert "</s>" in plain.stop
    named = from_tokenizer_config(
        b'{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}',
        jinja=None,
        origin="hub:y",
    )
    assert named is not None and named.render([]) == "D"
    separate = from_tokenizer_config(b"{}", jinja="J{{ 1 }}", origin="hub:z")
    assert separate is not None and separate.render([]) == "J1"
    assert from_tokenizer_config(b"{}", jinja=None, origin="hub:none") is None
