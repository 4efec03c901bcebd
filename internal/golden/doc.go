// Package golden keeps the bytes other peers depend on (wire encodings, signatures, model
// hashes) pinned in testdata/golden files, so a change that would split the network shows up as
// a failing test instead of as peers that quietly disagree. Run a package's tests with -update
// to rewrite its files after an intended change, and review the diff.
package golden
