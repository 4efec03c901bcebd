// Package layers holds the shared transformer language model: its configuration, the layer
// spans a peer can hold, and (as it grows) the gomlx stages that run them.
package layers
