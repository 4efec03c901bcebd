package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/neuroshard/neuroshard/client"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/node"
)

func main() {
	if err := newApp().Run(flagsFirst(os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "neuroshard:", explain(err))
		os.Exit(1)
	}
}

// explain adds the way out to an error a user meets often: a token the node refuses.
func explain(err error) error {
	if client.IsCode(err, apitypes.CodeUnauthorized) {
		return fmt.Errorf("%w\n  the node refused the API token: pass --token (or set NEUROSHARD_TOKEN), or --data-dir of that node to read its token file (default %s)", err, filepath.Join(node.DefaultDataDir(), "token"))
	}
	return err
}
