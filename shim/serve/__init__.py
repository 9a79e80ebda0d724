"""The serving layer: the API routes (``api``), the owner of each reply (``dispatch``), the
one relay loop for streams (``relay``), one module per API operation (``chat``,
``completions``, ``embeddings``, ``models``; ``generation`` and ``passthrough`` serve chat and
completions per kind of upstream, ``rendered_streams`` their streams on rendered protocols),
and OpenAI's response formats (``formats``)."""
