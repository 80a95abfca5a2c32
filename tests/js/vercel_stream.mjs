// The Vercel AI SDK against chatgate, as its users call it: createOpenAI({baseURL, apiKey}) and
// provider.chat(model) (the Chat Completions API, which always sends stream_options.include_usage).
//
//   CHATGATE_BASE_URL=http://127.0.0.1:8000/openai/eu/v1 CHATGATE_API_KEY=cg_... \
//     node tests/js/vercel_stream.mjs "Write a short poem about cats." [--stream-only]
//
// Prints one JSON object on stdout:
//   {"stream": {text, textParts, usage, finishReason, errors}, "generate": {text, usage, finishReason} | null}
// Run by tests/component/test_vercel_ai_sdk.py.
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, streamText } from 'ai';

const baseURL = process.env.CHATGATE_BASE_URL;
const apiKey = process.env.CHATGATE_API_KEY;
const args = process.argv.slice(2);
const streamOnly = args.includes('--stream-only');
const prompt = args.find((arg) => !arg.startsWith('--')) ?? 'Write a short poem about cats.';
const model = process.env.CHATGATE_MODEL ?? 'gpt-4o-mini';

if (!baseURL || !apiKey) {
  console.error('set CHATGATE_BASE_URL and CHATGATE_API_KEY');
  process.exit(2);
}

const provider = createOpenAI({ baseURL, apiKey });

const describeError = (error) => ({
  name: error?.name ?? null,
  message: String(error?.message ?? error),
  statusCode: error?.statusCode ?? null,
});

async function stream() {
  const errors = [];
  const result = streamText({
    model: provider.chat(model),
    prompt,
    maxRetries: 0,
    onError({ error }) {
      errors.push(describeError(error));
    },
  });
  let text = '';
  let textParts = 0;
  for await (const part of result.fullStream) {
    if (part.type === 'text-delta') {
      text += part.text;
      textParts += 1;
    } else if (part.type === 'error' && errors.length === 0) {
      errors.push(describeError(part.error));
    }
  }
  let usage = null;
  let finishReason = null;
  try {
    usage = await result.usage;
    finishReason = await result.finishReason;
  } catch (error) {
    if (errors.length === 0) errors.push(describeError(error));
  }
  return { text, textParts, usage, finishReason, errors };
}

async function generate() {
  const result = await generateText({ model: provider.chat(model), prompt, maxRetries: 0 });
  return { text: result.text, usage: result.usage, finishReason: result.finishReason };
}

const output = { stream: await stream(), generate: streamOnly ? null : await generate() };
console.log(JSON.stringify(output));
