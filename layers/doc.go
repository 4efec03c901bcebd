// Package layers holds the shared transformer language model, defined in gomlx's graph DSL
// (gradients from its autodiff) and run by the project's CPU backend (layers/cpu) or by
// gomlx's simplego as the reference.
//
//   - Config and presets (config.go), deterministic initial weights per (config, seed)
//     (params.go), the layer spans a peer can hold (span.go).
//   - The model's graph (graph.go): RMSNorm, rotary attention, SwiGLU MLP; the matmul gradient
//     registered in place of gomlx's stock one (dotvjp.go).
//   - Stage (stage.go): a span's layers with their parameters: Forward, Backward and
//     BackwardLoss on whole sequences, Step (AdamW, adamw.go); LocalPipeline chains stages
//     in one process (train.go).
//   - Session (session.go): one sequence decoded with a KV cache, written in place. The caches
//     of single-sequence sessions live side by side in per-size pools (kvpool.go), so that the
//     stage's batcher (rows.go) steps the sessions whose single positions arrive together as
//     one batch-B computation, each row with the bits it gets alone.
//   - Generation and sampling (generate.go, sample.go), checkpoints (checkpoint.go), the
//     training data shard of a replica (data.go), the byte tokenizer (tokenizer.go), and the
//     engine benchmark behind `neuroshard bench` (bench.go).
package layers
