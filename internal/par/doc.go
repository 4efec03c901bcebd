// Package par runs a function over indices on a fixed number of goroutines (benchmarks and
// tests that stand in for concurrent clients).
package par
