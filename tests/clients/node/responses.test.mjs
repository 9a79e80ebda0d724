// The Responses API through Node.js clients (node --test): the Vercel AI SDK's default OpenAI
// model (openai(...) speaks /v1/responses) and the openai SDK. Started by
// tests/clients/test_responses_node.py.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createOpenAI } from '@ai-sdk/openai';
import { generateText, stepCountIs, streamText } from 'ai';
import OpenAI from 'openai';

import { ANSWER, apiKey, ASK, baseURL, FINAL, weather } from './common.mjs';

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

for (const model of ['tgi', 'pipe-chatml', 'vllm']) {
  test(`ai sdk responses: a tool round trip (generateText): ${model}`, async () => {
    const result = await generateText({
      model: provider(model),
      tools: { get_weather: weather },
      stopWhen: stepCountIs(3),
      prompt: ASK,
      maxRetries: 0,
    });
    assert.equal(result.text, FINAL);
    assert.equal(result.steps.length, 2);
    const [call] = result.steps[0].toolCalls;
    assert.equal(call.toolName, 'get_weather');
    assert.deepEqual(call.input, { city: 'Paris' });
  });

  test(`ai sdk responses: a tool round trip (streamText): ${model}`, async () => {
    const result = streamText({
      model: provider(model),
      tools: { get_weather: weather },
      stopWhen: stepCountIs(3),
      prompt: ASK,
      maxRetries: 0,
    });
    for await (const part of result.fullStream) {
      if (part.type === 'error') throw part.error;
    }
    const steps = await result.steps;
    assert.equal(await result.text, FINAL);
    assert.equal(steps.length, 2);
    assert.deepEqual(steps[0].toolCalls[0].input, { city: 'Paris' });
  });
}

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
