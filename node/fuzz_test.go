package node

import (
	"testing"

	"github.com/neuroshard/neuroshard/p2p"
)

// FuzzParseBootstrap: any string is either rejected or yields peers with IDs.
func FuzzParseBootstrap(f *testing.F) {
	f.Add("/ip4/127.0.0.1/tcp/9000/p2p/12D3KooWGbQRmuZJy8RpJykarJ6RYhenW3rpfqyLASsqst4HxbJS")
	f.Add("/ip4/127.0.0.1/tcp/9000")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, s string) {
		infos, err := p2p.ParseBootstrap([]string{s})
		if err != nil {
			return
		}
		for _, ai := range infos {
			if ai.ID == "" {
				t.Fatalf("peer without ID from %q", s)
			}
		}
	})
}
