// Run a GGUF file in real llama.cpp (the prebuilt binaries of the npm package node-llama-cpp).
//
// Usage: node llama_cpp.mjs < request.json > answer.json
// request: {"model": PATH, "tokenize": [TEXT...],
//           "prompts": [{"tokens": [ID...], "logits": BOOL, "generate": N}...]}
// answer:  {"vocab_size": N, "tokenized": [[ID...]...],
//           "prompts": [{"logits": [[FLOAT x vocab] per prompt position] | null, "greedy": [ID...]}...]}
// Tokenizing parses special tokens (as a chat template's output is tokenized); greedy decoding
// runs at temperature 0 from exactly the given tokens, with no chat wrapper of node-llama-cpp's own.
// The package is found in the node_modules folder named by $NODE_LLAMA_CPP_MODULES (ES modules ignore NODE_PATH).
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.env.NODE_LLAMA_CPP_MODULES ?? "node_modules";
const { getLlama } = await import(pathToFileURL(join(modules, "node-llama-cpp", "dist", "index.js")).href);

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

function denseLogits(map, size) {
  const row = new Array(size).fill(null);
  for (const [token, value] of map) row[token] = value;
  return row;
}

async function promptLogits(sequence, tokens, size) {
  const input = tokens.map((t) => [t, { generateNext: { logits: true } }]);
  const output = await sequence.controlledEvaluate(input);
  return output.map((item) => denseLogits(item.next.logits, size));
}

async function greedy(sequence, tokens, count) {
  const out = [];
  if (count <= 0) return out;
  for await (const token of sequence.evaluate(tokens, { temperature: 0 })) {
    out.push(token);
    if (out.length >= count) break;
  }
  return out;
}

const request = await readStdin();
// One thread: llama.cpp's worker threads spin while waiting, which on a busy shared CPU costs minutes.
const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, logLevel: "error", maxThreads: 1 });
const model = await llama.loadModel({ modelPath: request.model });
const vocabSize = Number(model.fileInfo.metadata?.[model.fileInfo.metadata.general.architecture]?.vocab_size
  ?? model.fileInfo.metadata.tokenizer.ggml.tokens.length);
const answer = { vocab_size: vocabSize, tokenized: [], prompts: [] };
for (const text of request.tokenize ?? []) answer.tokenized.push(Array.from(model.tokenize(text, true)));
if ((request.prompts ?? []).length) {
  const longest = Math.max(...request.prompts.map((p) => p.tokens.length + (p.generate ?? 0)));
  const context = await model.createContext({ contextSize: Math.max(64, longest + 8), sequences: 1, threads: 1 });
  const sequence = context.getSequence();
  for (const prompt of request.prompts) {
    await sequence.clearHistory();
    const logits = prompt.logits ? await promptLogits(sequence, prompt.tokens, vocabSize) : null;
    await sequence.clearHistory();
    answer.prompts.push({ logits, greedy: await greedy(sequence, prompt.tokens, prompt.generate ?? 0) });
  }
  await context.dispose();
}
await model.dispose();
process.stdout.write(JSON.stringify(answer));
await llama.dispose();
