// Command neuroshard runs a NeuroShard node, and talks to running nodes and the DHT.
package main
