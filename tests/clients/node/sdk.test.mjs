// The official openai Node SDK against a running shim (node --test).
// Started by tests/clients/test_node_sdk.py, which serves the fake upstream and shim and sets:
//   SHIM_BASE_URL  shim's OpenAI base URL (http://127.0.0.1:PORT/v1)
//   SHIM_API_KEY   a client key shim accepts
import assert from 'node:assert/strict';
import { test } from 'node:test';

import OpenAI from 'openai';

const baseURL = process.env.SHIM_BASE_URL;
const apiKey = process.env.SHIM_API_KEY;
if (!baseURL || !apiKey) {
  throw new Error('SHIM_BASE_URL and SHIM_API_KEY must be set (run via tests/clients/test_node_sdk.py)');
}

const ANSWER = 'Hello from TGI!';
const ROUTER_MODEL = 'meta-llama/Llama-3.1-8B-Instruct';
const MESSAGES = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Say hello.' },
];

function client(key = apiKey) {
  return new OpenAI({ baseURL, apiKey: key, maxRetries: 0, timeout: 10_000 });
}

for (const model of ['tgi', 'pipe', 't5', 'vllm', ROUTER_MODEL]) {
  test(`chat non-stream: ${model}`, async () => {
    const completion = await client().chat.completions.create({ model, messages: MESSAGES });
    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.model, model);
    assert.equal(completion.choices[0].message.content, ANSWER);
    assert.equal(completion.choices[0].finish_reason, 'stop');
    const usage = completion.usage;
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  });

  test(`chat stream with usage: ${model}`, async () => {
    const stream = await client().chat.completions.create({
      model,
      messages: MESSAGES,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    assert.equal(text, ANSWER);
    assert.equal(new Set(chunks.map((c) => c.id)).size, 1);
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.ok(last.usage.completion_tokens > 0);
    const finishes = chunks.filter((c) => c.choices.length).map((c) => c.choices[0].finish_reason);
    assert.equal(finishes.at(-1), 'stop');
  });
}

test('stream helper accumulates the message', async () => {
  for (const model of ['tgi', 'vllm']) {
    const runner = client().chat.completions.stream({ model, messages: MESSAGES });
    let deltas = '';
    runner.on('content', (delta) => {
      deltas += delta;
    });
    const final = await runner.finalChatCompletion();
    assert.equal(deltas, ANSWER);
    assert.equal(final.choices[0].message.content, ANSWER);
  }
});

test('completions', async () => {
  const completion = await client().completions.create({ model: 'tgi', prompt: 'Once upon', max_tokens: 8 });
  assert.equal(completion.object, 'text_completion');
  assert.equal(completion.choices[0].text, ANSWER);
});

test('embeddings: base64 (the default) and float agree', async () => {
  const input = ['The food was delicious.', 'The waiter was friendly.'];
  for (const model of ['embed', 'BAAI/bge-small-en-v1.5', 'oai-embed']) {
    const decoded = await client().embeddings.create({ model, input });
    const floats = await client().embeddings.create({ model, input, encoding_format: 'float' });
    assert.equal(decoded.model, model);
    assert.equal(decoded.data.length, 2);
    decoded.data.forEach((item, i) => {
      const expected = floats.data[i].embedding;
      assert.ok(Array.isArray(item.embedding), 'the SDK decodes base64 into an array');
      assert.equal(item.embedding.length, expected.length);
      item.embedding.forEach((x, j) => assert.ok(Math.abs(x - expected[j]) < 1e-6, `${model}[${i}][${j}]`));
    });
    assert.notDeepEqual(decoded.data[0].embedding, decoded.data[1].embedding);
  }
});

test('models: list and retrieve an id with a slash', async () => {
  const ids = [];
  for await (const model of client().models.list()) ids.push(model.id);
  assert.ok(ids.includes('tgi'));
  assert.ok(ids.includes(ROUTER_MODEL));
  const router = await client().models.retrieve(ROUTER_MODEL);
  assert.equal(router.id, ROUTER_MODEL);
  assert.equal(router.owned_by, 'meta-llama');
});

test('raw response headers', async () => {
  const { data, response } = await client()
    .chat.completions.create({ model: 'tgi', messages: MESSAGES })
    .withResponse();
  assert.equal(data.choices[0].message.content, ANSWER);
  assert.ok(response.headers.get('x-request-id').length >= 16);
  assert.ok(Number(response.headers.get('x-shim-overhead-ms')) >= 0);
});

test('unknown model: NotFoundError, code model_not_found', async () => {
  await assert.rejects(client().chat.completions.create({ model: 'gpt-99', messages: MESSAGES }), (err) => {
    assert.ok(err instanceof OpenAI.NotFoundError, `got ${err?.constructor?.name}: ${err}`);
    assert.equal(err.status, 404);
    assert.equal(err.code, 'model_not_found');
    assert.equal(err.param, 'model');
    assert.match(err.message, /The model `gpt-99` does not exist/);
    assert.ok(err.requestID);
    return true;
  });
});

test('wrong key: AuthenticationError', async () => {
  await assert.rejects(client('sk-wrong').chat.completions.create({ model: 'tgi', messages: MESSAGES }), (err) => {
    assert.ok(err instanceof OpenAI.AuthenticationError, `got ${err?.constructor?.name}: ${err}`);
    assert.equal(err.status, 401);
    assert.equal(err.code, 'invalid_api_key');
    return true;
  });
});

test('bad parameter: BadRequestError naming the param', async () => {
  await assert.rejects(client().chat.completions.create({ model: 'tgi', messages: MESSAGES, n: 99 }), (err) => {
    assert.ok(err instanceof OpenAI.BadRequestError, `got ${err?.constructor?.name}: ${err}`);
    assert.equal(err.param, 'n');
    return true;
  });
});
