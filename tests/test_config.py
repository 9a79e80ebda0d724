"""Config loading: the example passes `shim check`; each bad config names file, key and fault."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shim.__main__ import main
from shim.config import ConfigError
from shim.loader import load_config, parse_config
from shim.routing import Router

ROOT = Path(__file__).resolve().parent.parent
GOOD_MODEL = '[models.m]\ntask = "text-generation"\nurl = "http://127.0.0.1:1"\n'


def test_example_config_passes_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(ROOT / "config.example.toml")]) == 0
    out = capsys.readouterr().out
    assert "llama-3.1-8b -> text-generation, openai, https://router.huggingface.co/v1" in out
    assert "flan-t5 -> text2text-generation, pipeline" in out


def test_example_config_check_never_prints_tokens(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_VerySecretValue123")
    monkeypatch.setenv("MY_ENDPOINT_TOKEN", "hf_OtherSecret456")
    assert main(["check", "--config", str(ROOT / "config.example.toml")]) == 0
    captured = capsys.readouterr()
    assert "Secret" not in captured.out + captured.err


def test_console_script_module_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shim", "check", "--config", str(ROOT / "config.example.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "4 models" in result.stdout or "models" in result.stdout


BAD = [
    pytest.param(
        GOOD_MODEL + "colour = 1\n", "models.m.colour: unknown key", id="unknown-model-key"
    ),
    pytest.param("[server]\nprot = 1\n", "server.prot: unknown key", id="unknown-server-key"),
    pytest.param(
        '[models.m]\ntask = "text-generation"\nurl = "http://x"\ntimeout = "long"\n',
        "models.m.timeout: expected `float`, got `str`",
        id="wrong-type",
    ),
    pytest.param(
        '[models.m]\ntask = "text-generation"\nurl = "http://x"\ntoken = "${NOPE_UNSET}"\n',
        "models.m.token: environment variable NOPE_UNSET is not set",
        id="missing-env",
    ),
    pytest.param(
        '[models.m]\ntask = "text-generation"\n',
        "models.m: needs `url` (an endpoint) or `hf_model` (serverless)",
        id="no-url-no-hf-model",
    ),
    pytest.param(
        '[models.m]\ntask = "summarization"\nurl = "http://x"\n',
        "models.m.task: unknown value 'summarization' (expected one of: text-generation",
        id="unknown-task",
    ),
    pytest.param(
        '[models.m]\ntask = "text-generation"\nurl = "http://x"\nprotocol = "grpc"\n',
        "models.m.protocol: unknown value 'grpc' (expected one of: tgi, pipeline",
        id="unknown-protocol",
    ),
    pytest.param(
        '[models.m]\ntask = "feature-extraction"\nurl = "http://x"\nprotocol = "tgi"\n',
        "models.m.protocol: `tgi` is not valid for task `feature-extraction`",
        id="protocol-not-for-task",
    ),
    pytest.param(
        '[models.m]\ntask = "text-generation"\nurl = "ftp://x"\n',
        "models.m.url: `ftp://x` is not an http(s) URL",
        id="bad-url",
    ),
    pytest.param(
        GOOD_MODEL + 'chat_template = "no-such-template"\n',
        "models.m.chat_template: `no-such-template` is neither a built-in",
        id="bad-template",
    ),
    pytest.param(
        GOOD_MODEL + 'fallbacks = ["ghost"]\n',
        "models.m.fallbacks: `ghost` is not another model",
        id="bad-fallback",
    ),
    pytest.param(
        GOOD_MODEL + "max_choices = 0\n",
        "models.m.max_choices: must be at least 1",
        id="limit-below-one",
    ),
    pytest.param("models = 3\n", "models: expected a table of models", id="models-not-table"),
    pytest.param("[server\n", "invalid TOML", id="invalid-toml"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_config_names_file_key_and_fault(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Router(parse_config(text, source="bad.toml", env={}))
    line = str(info.value)
    assert line.startswith("bad.toml: ")
    assert message in line
    assert "\n" not in line


def test_check_command_exits_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(GOOD_MODEL + "bogus = true\n")
    assert main(["check", "--config", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {path}: models.m.bogus: unknown key"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "absent.toml")


def test_env_expansion_with_defaults() -> None:
    config = parse_config(
        '[huggingface]\ntoken = "${TOK:-}"\n[models.m]\ntask = "text-generation"\n'
        'url = "http://${HOST:-localhost}:${PORT}"\n',
        env={"PORT": "9"},
    )
    assert config.huggingface.token == ""
    assert config.models["m"].url == "http://localhost:9"


def test_protocol_defaults() -> None:
    router = Router(
        parse_config(
            '[models.a]\ntask = "text-generation"\nhf_model = "o/a"\n'
            '[models.b]\ntask = "text-generation"\nurl = "http://b"\n'
            '[models.c]\ntask = "text2text-generation"\nhf_model = "o/c"\n'
            '[models.d]\ntask = "feature-extraction"\nurl = "http://d"\n'
            '[models.e]\ntask = "feature-extraction"\nhf_model = "o/e"\n'
            '[models.f]\ntask = "text-generation"\nhf_model = "o/f"\nprotocol = "pipeline"\n',
            env={},
        )
    )
    got = {name: (r.protocol, r.upstreams[0].base) for name, r in router.routes.items()}
    assert got == {
        "a": ("openai", "https://router.huggingface.co/v1"),
        "b": ("tgi", "http://b"),
        "c": ("pipeline", "https://router.huggingface.co/hf-inference/models/o/c"),
        "d": ("tei", "http://d"),
        "e": (
            "pipeline",
            "https://router.huggingface.co/hf-inference/models/o/e/pipeline/feature-extraction",
        ),
        "f": ("pipeline", "https://router.huggingface.co/hf-inference/models/o/f"),
    }


def test_openai_url_normalised_with_or_without_v1() -> None:
    router = Router(
        parse_config(
            '[models.a]\ntask = "text-generation"\nurl = "http://a/v1/"\nprotocol = "openai"\n'
            '[models.b]\ntask = "text-generation"\nurl = "http://b"\nprotocol = "openai"\n',
            env={},
        )
    )
    assert router.routes["a"].upstreams[0].base == "http://a/v1"
    assert router.routes["b"].upstreams[0].base == "http://b/v1"


def test_request_limits_are_accepted_with_documented_defaults() -> None:
    limits = ("max_messages", "max_n", "max_prompts", "max_choices", "max_tokens_limit")
    defaults = Router(parse_config(GOOD_MODEL, env={})).routes["m"]
    assert [getattr(defaults, name) for name in limits] == [1000, 8, 64, 128, None]
    text = GOOD_MODEL + "max_messages = 50\nmax_n = 4\nmax_prompts = 8\nmax_choices = 16\n"
    route = Router(parse_config(text + "max_tokens_limit = 512\n", env={})).routes["m"]
    assert [getattr(route, name) for name in limits] == [50, 4, 8, 16, 512]


def test_example_config_documents_the_request_limits() -> None:
    example = (ROOT / "config.example.toml").read_text()
    for key in ("max_messages", "max_n", "max_prompts", "max_choices", "max_tokens_limit"):
        assert f"# {key} = " in example, key
