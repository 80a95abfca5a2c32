// The seeds' Vercel AI SDK example with generateText instead of streamText: the default provider
// (`langdockProvider("gpt-4o-mini")`, the Responses API), the base URL and key from the environment.
// Prints the text, then one line of JSON with the usage and finish reason.
import { generateText } from "ai";
import { createOpenAI } from "@ai-sdk/openai";

const langdockProvider = createOpenAI({
  baseURL: process.env.CHATGATE_BASE_URL,
  apiKey: process.env.CHATGATE_API_KEY,
});

const result = await generateText({
  model: langdockProvider("gpt-4o-mini"),
  prompt: "Write a short poem about cats",
});

process.stdout.write(result.text + "\n");
process.stdout.write(JSON.stringify({ usage: result.usage, finishReason: result.finishReason }) + "\n");
