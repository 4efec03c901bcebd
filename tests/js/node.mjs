// Starts the built binary (NEUROSHARD_BIN) on 127.0.0.1 with a fresh data dir and waits for it
// to say where its API is; stop() ends it, waits for it to exit (it saves its state on the way
// out) and removes the data dir.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export async function startNode(token, extraArgs = []) {
  const bin = process.env.NEUROSHARD_BIN;
  if (!bin) throw new Error("NEUROSHARD_BIN must name the built binary");
  const dir = mkdtempSync(join(tmpdir(), "neuroshard-js-"));
  const proc = spawn(bin, ["--host", "127.0.0.1", "--port", "0", "--data-dir", join(dir, "data"), "--token", token,
    "--model", "neuroshard-tiny", "--bench=false", "--log-level", "info", ...extraArgs]);
  const exited = new Promise((resolve) => proc.on("exit", resolve));
  const node = {
    output: "",
    url: "",
    async stop() {
      proc.kill("SIGTERM");
      const killed = setTimeout(() => proc.kill("SIGKILL"), 20000);
      await exited;
      clearTimeout(killed);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  node.url = await new Promise((resolve, reject) => {
    const seen = (chunk) => {
      node.output += chunk;
      const m = node.output.match(/API:\s+(http:\/\/[0-9.:]+)\/api\/v1/);
      if (m) resolve(m[1]);
    };
    proc.stdout.on("data", seen);
    proc.stderr.on("data", seen);
    proc.on("exit", (code) => reject(new Error(`the node exited (${code}) before its API was up:\n${node.output}`)));
    setTimeout(() => reject(new Error(`the node never said where its API is:\n${node.output}`)), 60000).unref();
  });
  return node;
}

// run runs a test body against a node, prints the node's output on failure, and exits.
export async function run(name, token, args, body) {
  let node;
  let failed = false;
  try {
    node = await startNode(token, args);
    await body(node);
  } catch (e) {
    failed = true;
    console.error(`FAIL ${name}: ${e.stack || e.message}`);
    if (node) console.error("node output:\n" + node.output);
  } finally {
    if (node) await node.stop();
  }
  process.exit(failed ? 1 : 0);
}
