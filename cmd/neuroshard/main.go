// Command neuroshard runs a NeuroShard node, and talks to running nodes and the DHT.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newApp().Run(flagsFirst(os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "neuroshard:", err)
		os.Exit(1)
	}
}
