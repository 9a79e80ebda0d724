// The Vercel AI SDK's tool round trips through the Responses API (its default openai(...)
// model), registered by responses.test.mjs and responses_tools.test.mjs for their models.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { generateText, stepCountIs, streamText } from 'ai';

import { ASK, FINAL, weather } from './common.mjs';

export function toolRoundTrips(provider, models) {
  for (const model of models) {
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
}
