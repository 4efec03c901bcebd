// Package backoff spaces out retries per key: after a failure the key waits a second,
// doubling with each further failure up to a bound, and a success resets it.
package backoff
