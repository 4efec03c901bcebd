// The node's OpenAI-compatible API with the official `openai` package from npm, against the
// built binary on 127.0.0.1 (tiny model, not training, so greedy answers are reproducible).

import assert from "node:assert/strict";
import OpenAI from "openai";
import { run } from "./node.mjs";

const TOKEN = "openai-client-test-token";

await run("openai", TOKEN, ["--train=false", "--rate-limit", "inference=0", "--rate-limit", "status=0"], async (node) => {
  const client = new OpenAI({ apiKey: TOKEN, baseURL: node.url + "/v1", maxRetries: 0, timeout: 60000 });

  // Models: the list, one by ID, and an unknown ID refused as OpenAI refuses it.
  const models = [];
  for await (const m of client.models.list()) models.push(m);
  assert.equal(models.length, 1, "one model served");
  const model = models[0].id;
  assert.equal(model, "neuroshard-tiny");
  assert.equal((await client.models.retrieve(model)).id, model);
  await assert.rejects(client.models.retrieve("gpt-4"), (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && typeof e.message === "string");

  // Chat: greedy, the same text streamed or not; usage in the stream only when asked for.
  const ask = { model, messages: [{ role: "user", content: "ROMEO:" }], max_tokens: 8, temperature: 0 };
  const full = await client.chat.completions.create(ask);
  const text = full.choices[0].message.content;
  assert.equal(full.object, "chat.completion");
  assert.equal(full.choices[0].message.role, "assistant");
  assert.ok(typeof text === "string" && text.length > 0, "chat text");
  assert.equal(full.usage.completion_tokens, 8);
  assert.equal(full.choices[0].finish_reason, "length");

  let streamed = "";
  let usageChunks = 0;
  for await (const chunk of await client.chat.completions.create({ ...ask, stream: true })) {
    if (chunk.usage) usageChunks++;
    for (const c of chunk.choices) streamed += c.delta?.content ?? "";
  }
  assert.equal(streamed, text, "streamed chat text");
  assert.equal(usageChunks, 0, "usage sent without stream_options.include_usage");
  let usage = null;
  streamed = "";
  for await (const chunk of await client.chat.completions.create({ ...ask, stream: true, stream_options: { include_usage: true } })) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) streamed += c.delta?.content ?? "";
  }
  assert.equal(streamed, text);
  assert.equal(usage?.completion_tokens, 8, "usage when asked for");

  // Completions: the same, on a plain prompt.
  const comp = await client.completions.create({ model, prompt: "ROMEO:", max_tokens: 8, temperature: 0 });
  assert.ok(comp.choices[0].text.length > 0);
  let compStreamed = "";
  for await (const chunk of await client.completions.create({ model, prompt: "ROMEO:", max_tokens: 8, temperature: 0, stream: true })) {
    compStreamed += chunk.choices[0]?.text ?? "";
  }
  assert.equal(compStreamed, comp.choices[0].text, "streamed completion text");

  // Errors as OpenAI shapes them: the client's own error classes, with type and param.
  const wrong = new OpenAI({ apiKey: "not-the-token", baseURL: node.url + "/v1", maxRetries: 0 });
  await assert.rejects(wrong.chat.completions.create(ask), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401 && e.type === "authentication_error");
  await assert.rejects(client.chat.completions.create({ ...ask, temperature: 5 }),
    (e) => e instanceof OpenAI.BadRequestError && e.type === "invalid_request_error" && e.param === "temperature");
  await assert.rejects(client.chat.completions.create({ ...ask, messages: [] }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === "messages");

  console.log(`openai: ${model}, chat ${JSON.stringify(text)}, completion ${JSON.stringify(comp.choices[0].text)}, streams equal, errors typed`);
});
