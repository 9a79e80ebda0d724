"""Token counts with a model's tokenizer, for answers whose upstream reports none (pipelines,
and any upstream that leaves a count out). Without a tokenizer the caller uses the documented
estimate (``shim.adapters._result.estimate_tokens``).

Encoding is CPU work in the ``tokenizers`` library: a 2k-token prompt took ~4-9 ms here
(``Tokenizer.encode``, a trained 32k byte-level BPE, 2 shared cores), twenty times the ~0.2 ms an
event-loop step may take. Short texts are encoded inline (a thread hop costs more than they do);
longer ones in a worker thread with ``encode_batch``, which releases the GIL while it works.
"""

from __future__ import annotations

import asyncio

from shim.discovery import TokenCounter

#: Characters encoded inline: ~100 tokens, ~0.2 ms at the rate measured above.
INLINE_CHARS = 400


async def count_tokens(tokenizer: TokenCounter, texts: list[str], *, special: bool) -> list[int]:
    """Tokens in each of ``texts``; ``special``: with the special tokens the model adds to an
    input (a prompt's BOS), as it counts them; without for generated text."""
    if sum(map(len, texts)) <= INLINE_CHARS:
        encodings = tokenizer.encode_batch(texts, add_special_tokens=special)
    else:
        encodings = await asyncio.to_thread(
            tokenizer.encode_batch, texts, add_special_tokens=special
        )
    return [len(encoding.ids) for encoding in encodings]
