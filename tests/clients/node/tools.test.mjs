// Tool calling through shim's chat completions with Node.js clients (node --test): the Vercel AI
// SDK's chat model (openai.chat(...)) and the openai SDK. Started by tests/clients/test_tools_node.py.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createOpenAI } from '@ai-sdk/openai';
import { generateText, stepCountIs, streamText } from 'ai';
import OpenAI from 'openai';

import { apiKey, ASK, baseURL, FINAL, weather } from './common.mjs';

const provider = createOpenAI({ baseURL, apiKey });
const MODELS = ['tgi', 'pipe-chatml', 'vllm'];
const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string' } },
        required: ['city'],
        additionalProperties: false,
      },
    },
  },
];

function assertRoundTrip(steps, text) {
  assert.equal(text, FINAL);
  assert.equal(steps.length, 2);
  assert.equal(steps[0].finishReason, 'tool-calls');
  const [call] = steps[0].toolCalls;
  assert.equal(call.toolName, 'get_weather');
  assert.deepEqual(call.input, { city: 'Paris' });
  assert.equal(steps[1].finishReason, 'stop');
}

for (const model of MODELS) {
  test(`ai sdk chat: generateText runs the tool and answers: ${model}`, async () => {
    const result = await generateText({
      model: provider.chat(model),
      tools: { get_weather: weather },
      stopWhen: stepCountIs(3),
      prompt: ASK,
      maxRetries: 0,
    });
    assertRoundTrip(result.steps, result.text);
  });

  test(`ai sdk chat: streamText runs the tool and answers: ${model}`, async () => {
    const result = streamText({
      model: provider.chat(model),
      tools: { get_weather: weather },
      stopWhen: stepCountIs(3),
      prompt: ASK,
      maxRetries: 0,
    });
    const kinds = new Set();
    for await (const part of result.fullStream) {
      if (part.type === 'error') throw part.error;
      kinds.add(part.type);
    }
    assertRoundTrip(await result.steps, await result.text);
    for (const kind of ['tool-input-start', 'tool-input-delta', 'tool-call', 'tool-result', 'text-delta']) {
      assert.ok(kinds.has(kind), `no ${kind} part in ${[...kinds]}`);
    }
  });

  test(`openai sdk: tool call, whole and streamed: ${model}`, async () => {
    const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 10_000 });
    const messages = [{ role: 'user', content: ASK }];
    const completion = await client.chat.completions.create({ model, messages, tools: TOOLS });
    const { message } = completion.choices[0];
    assert.ok(message.tool_calls?.length === 1, `one tool call expected: ${JSON.stringify(message)}`);
    const [call] = message.tool_calls;
    assert.equal(completion.choices[0].finish_reason, 'tool_calls');
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
    const runner = client.chat.completions.stream({ model, messages, tools: TOOLS });
    const final = await runner.finalChatCompletion();
    const [streamed] = final.choices[0].message.tool_calls ?? [];
    assert.ok(streamed, `a streamed tool call expected: ${JSON.stringify(final.choices[0].message)}`);
    assert.equal(streamed.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(streamed.function.arguments), { city: 'Paris' });
    assert.equal(final.choices[0].finish_reason, 'tool_calls');
  });
}
