// Command neuroshard-sim runs swarms of the node's p2p parts on libp2p's in-memory network at
// several sizes and writes what it measured (results.json) and how each figure grows with the
// number of peers (PNG plots) to a directory. `make sim` runs it at 100 and 300 peers
// (SIM_PEERS for others); `make sim-small` at 25, 50 and 100 (a few minutes); --replot draws
// the plots again from a directory's results. Then it times DiLoCo rounds among 2 to 16
// replicas of one span (rounds.json, rounds.png).
package main
