package neuroshard

import _ "embed"

// Shakespeare is the first 128 KiB of "tiny shakespeare" (public domain, collected by Andrej
// Karpathy for char-rnn), the default training corpus; see testdata/README.md.
//
//go:embed testdata/tinyshakespeare.txt
var Shakespeare []byte
