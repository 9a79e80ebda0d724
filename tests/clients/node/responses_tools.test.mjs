// The Responses API's tool round trips on rendered protocols (tool calls parsed from the
// model's text) with the Vercel AI SDK's default openai(...) model. Started by
// tests/clients/test_responses_tools.py.
import { createOpenAI } from '@ai-sdk/openai';

import { apiKey, baseURL } from './common.mjs';
import { toolRoundTrips } from './responses_common.mjs';

toolRoundTrips(createOpenAI({ baseURL, apiKey }), ['tgi', 'pipe-chatml']);
