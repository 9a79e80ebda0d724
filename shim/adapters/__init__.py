"""One adapter module per Hugging Face task; adapters are pure translators.

- ``text_generation``: TGI native routes and the inference-toolkit pipeline (also text2text);
- ``openai_compat``: OpenAI-speaking upstreams (TGI Messages API, vLLM, the HF router);
- ``feature_extraction``: TEI, pipelines and OpenAI-style embeddings;
- ``text_ranking``: rerank on TEI, the toolkit's text-ranking pipeline and rerank APIs.

Shared pieces: ``_params`` (OpenAI parameters → neutral), ``_prompt`` (chat → prompt),
``_stop`` (stop sequences), ``_result`` (neutral results); tool calling on rendered protocols:
``_tools`` (a request's tools → ``ToolPlan``, TGI's grammar) and ``_answer`` (a model's text →
reasoning, content and calls, streamed or whole; over ``_tool_parser``, ``_tool_call``,
``_json_stream`` and ``_reasoning``).
"""
