// The seeds' Vercel AI SDK example (shared/seeds/002_*.txt), as written: the default provider
// (`langdockProvider("gpt-4o-mini")`, which calls the Responses API) and streamText. Only the base URL and
// the key come from the environment instead of Langdock's:
//
//   CHATGATE_BASE_URL=http://127.0.0.1:8000/openai/eu/v1 CHATGATE_API_KEY=cg_... node tests/js/seed_example_stream.mjs
import { streamText } from "ai";
import { createOpenAI } from "@ai-sdk/openai";

const langdockProvider = createOpenAI({
  baseURL: process.env.CHATGATE_BASE_URL,
  apiKey: process.env.CHATGATE_API_KEY,
});

const result = await streamText({
  model: langdockProvider("gpt-4o-mini"),
  prompt: "Write a short poem about cats",
});

for await (const textPart of result.textStream) {
  process.stdout.write(textPart);
}
