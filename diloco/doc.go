// Package diloco implements DiLoCo (Douillard et al. 2023) for the replicas of one layer span:
// pseudo-gradients, their robust aggregation, and the outer Nesterov step. Everything that
// must agree bit for bit across replicas is plain Go over float32 slices in a fixed order, with
// float64 accumulators rounded once, so every replica that aggregates the same contributions
// ends the round with identical weights.
package diloco
