// Package peerrate keeps one x/time/rate limiter per key (a peer), made on first use with the
// same limit and burst, in a bounded map: past MaxKeys the map starts again, which only hands
// out fresh bursts (an attacker with many identities gains nothing it could not get by
// having them).
package peerrate
