// What the Node.js client tests share: shim's address (from the Python test that started the
// stack), the fake model's answers, and a weather tool for the Vercel AI SDK.
import { tool } from 'ai';
import { z } from 'zod';

export const baseURL = process.env.SHIM_BASE_URL;
export const apiKey = process.env.SHIM_API_KEY;
if (!baseURL || !apiKey) {
  throw new Error('SHIM_BASE_URL and SHIM_API_KEY must be set (run via tests/clients/test_*node*.py)');
}

export const ANSWER = 'Hello from TGI!';
export const ASK = 'What is the weather in Paris?';
// The fake model (tests/fake_model.py) calls get_weather({city: "Paris"}), then quotes the result.
export const RESULT = '18 C and sunny in Paris';
export const FINAL = `The tool says: ${RESULT}`;

// The tool the AI SDK runs itself (a zod schema, turned into JSON Schema by the SDK).
export const weather = tool({
  description: 'The current weather in a city',
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => `18 C and sunny in ${city}`,
});
