// Package natsim stands for a NAT on loopback, for tests: connection gaters on both sides of
// it. The node behind it dials out only to its relay and takes in only the relay's
// connections and relayed ones; everyone else cannot dial its own addresses (a dial through a
// relay works), which is what a NAT does to them.
package natsim
