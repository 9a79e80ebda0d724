// The Responses API through Node.js clients (node --test): the Vercel AI SDK's default OpenAI
// model (openai(...) speaks /v1/responses) and the openai SDK. Started by
// tests/clients/test_responses_node.py.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createOpenAI } from '@ai-sdk/openai';
import { generateText, streamText } from 'ai';
import OpenAI from 'openai';

import { ANSWER, apiKey, baseURL } from './common.mjs';
import { toolRoundTrips } from './responses_common.mjs';

const provider = createOpenAI({ baseURL, apiKey });

for (const model of ['tgi', 'pipe', 'vllm']) {
  test(`ai sdk responses: generateText and streamText: ${model}`, async () => {
    const result = await generateText({ model: provider(model), prompt: 'Say hello.', maxRetries: 0 });
    assert.equal(result.text, ANSWER);
    assert.equal(result.finishReason, 'stop');
    assert.ok(result.usage.outputTokens > 0);
    assert.match(result.response.id, /^resp_/);
    const streamed = streamText({ model: provider(model), prompt: 'Say hello.', maxRetries: 0 });
    let text = '';
    for await (const part of streamed.fullStream) {
      if (part.type === 'error') throw part.error;
      if (part.type === 'text-delta') text += part.text;
    }
    assert.equal(text, ANSWER);
    assert.equal(await streamed.finishReason, 'stop');
  });
}

// A second turn resends the first: with store on (the provider's default) the AI SDK sends
// the earlier answer as an item_reference to its stored item, which shim reads back.
for (const model of ['tgi', 'pipe', 'vllm']) {
  test(`ai sdk responses: a second turn references the first answer: ${model}`, async () => {
    const ask = { role: 'user', content: 'Say hello.' };
    const first = await generateText({ model: provider(model), messages: [ask], maxRetries: 0 });
    const [answer] = first.response.messages;
    const itemId = answer.content[0].providerOptions.openai.itemId;
    assert.match(itemId, /^msg_/);
    const messages = [ask, ...first.response.messages, { role: 'user', content: 'Once more.' }];
    const second = streamText({ model: provider(model), messages, maxRetries: 0 });
    for await (const part of second.fullStream) {
      if (part.type === 'error') throw part.error;
    }
    assert.equal(await second.text, ANSWER);
    const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 10_000 });
    const items = await client.responses.inputItems.list((await second.response).id, { order: 'asc' });
    assert.deepEqual(
      items.data.map((item) => [item.role, item.id === itemId]),
      [['user', false], ['assistant', true], ['user', false]],
    );
    assert.equal(items.data[1].content[0].text, ANSWER);
  });
}

// Tool round trips on an openai upstream; on tgi and pipe-chatml (tool calls parsed from the
// model's text) they are in responses_tools.test.mjs.
toolRoundTrips(provider, ['vllm']);

test('openai sdk: responses create, stream, retrieve, delete', async () => {
  const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 10_000 });
  const created = await client.responses.create({ model: 'tgi', input: 'Say hello.' });
  assert.equal(created.output_text, ANSWER);
  const stream = await client.responses.create({ model: 'tgi', input: 'Say hello.', stream: true });
  const types = [];
  let last = -1;
  for await (const event of stream) {
    assert.ok(event.sequence_number > last, `sequence_number ${event.sequence_number} after ${last}`);
    last = event.sequence_number;
    if (types.at(-1) !== event.type) types.push(event.type);
  }
  assert.deepEqual(types, [
    'response.created',
    'response.in_progress',
    'response.output_item.added',
    'response.content_part.added',
    'response.output_text.delta',
    'response.output_text.done',
    'response.content_part.done',
    'response.output_item.done',
    'response.completed',
  ]);
  const got = await client.responses.retrieve(created.id);
  assert.equal(got.output_text, ANSWER);
  await client.responses.delete(created.id);
  await assert.rejects(client.responses.retrieve(created.id), OpenAI.NotFoundError);
});
