// llama.cpp (through the npm package node-llama-cpp, prebuilt CPU binaries) decoding a local .gguf:
// greedy, a fixed number of new tokens after a plain-text prompt, on a set number of threads.
// Prints one JSON line on stdout; benchmarks/llamacpp.py runs it and compares it with attnlab.
//
//   npm install --prefix benchmarks/llamacpp node-llama-cpp@3.22.1      # once, into an ignored folder
//   node benchmarks/llamacpp.mjs --model path/to/model.gguf --prompt "Once upon a time" \
//       [--new-tokens 64] [--threads 1] [--modules benchmarks/llamacpp/node_modules]
//
// Never downloads anything: the prebuilt binary must already be installed (build: "never",
// skipDownload) and the model is the given file.
//
// The JSON line: {"engine", "model", "threads", "prompt_tokens", "new_tokens", "first_token_s",
// "decode_s", "tokens_per_s", "token_ids", "pieces" (each new token's text), "text", "build",
// "system_info"}. first_token_s is the prompt's
// evaluation up to the first new token; tokens_per_s counts the new tokens after the first over
// the time they took (the same split as attnlab generate's report).

import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: options } = parseArgs({
    options: {
        model: { type: "string" },
        prompt: { type: "string" },
        "new-tokens": { type: "string", default: "64" },
        threads: { type: "string", default: "1" },
        modules: { type: "string", default: path.join(here, "llamacpp", "node_modules") },
    },
});

function fail(message) {
    console.error(`llamacpp.mjs: ${message}`);
    process.exit(2);
}

if (!options.model || options.prompt === undefined) fail("give --model FILE.gguf and --prompt TEXT");
const newTokens = Number(options["new-tokens"]);
const threads = Number(options.threads);
if (!Number.isInteger(newTokens) || newTokens < 1) fail("--new-tokens must be an integer >= 1");
if (!Number.isInteger(threads) || threads < 1) fail("--threads must be an integer >= 1");

// Resolve the package from the install prefix, not from wherever node happens to look.
let entry;
try {
    entry = createRequire(path.join(path.resolve(options.modules), "noop.js")).resolve("node-llama-cpp");
} catch {
    fail(`node-llama-cpp is not installed under ${options.modules}; ` +
         "run: npm install --prefix benchmarks/llamacpp node-llama-cpp@3.22.1");
}
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry).href);

const llama = await getLlama({
    gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true,
    maxThreads: threads, logLevel: LlamaLogLevel.error, progressLogs: false,
});
const model = await llama.loadModel({ modelPath: path.resolve(options.model), gpuLayers: 0 });
const promptIds = model.tokenize(options.prompt);
if (promptIds.length === 0) fail("the prompt encodes to no tokens");
const context = await model.createContext({
    contextSize: promptIds.length + newTokens + 8, batchSize: Math.max(promptIds.length, 1),
    threads: { ideal: threads, min: threads },
});
const sequence = context.getSequence();

// temperature 0 is greedy (argmax); no repeat penalty, no grammar; end-of-generation tokens are
// kept so that exactly newTokens come out, as attnlab generate does without --chat.
const ids = [];
const start = performance.now();
let firstAt = start;
for await (const token of sequence.evaluate(promptIds, { temperature: 0, yieldEogToken: true })) {
    ids.push(token);
    if (ids.length === 1) firstAt = performance.now();
    if (ids.length >= newTokens) break;
}
const end = performance.now();

// Each new token's text, as the difference of the text up to it and up to the one before (a token
// holding part of a multi-byte character then shows in the token that completes it).
const pieces = [];
let before = "";
for (let i = 1; i <= ids.length; i++) {
    const upTo = model.detokenize(ids.slice(0, i));
    pieces.push(upTo.startsWith(before) ? upTo.slice(before.length) : upTo);
    before = upTo;
}
const decodeSeconds = (end - firstAt) / 1000;
console.log(JSON.stringify({
    engine: "llama.cpp",
    model: path.resolve(options.model),
    threads,
    prompt_tokens: promptIds.length,
    new_tokens: ids.length,
    first_token_s: (firstAt - start) / 1000,
    decode_s: decodeSeconds,
    tokens_per_s: ids.length > 1 && decodeSeconds > 0 ? (ids.length - 1) / decodeSeconds : null,
    token_ids: ids.map(Number),
    pieces,
    text: model.detokenize(ids),
    build: `node-llama-cpp ${llama.buildType}, llama.cpp ${llama.llamaCppRelease?.release ?? "?"}`,
    system_info: llama.systemInfo.trim(),
}));
await context.dispose();
await model.dispose();
await llama.dispose();
