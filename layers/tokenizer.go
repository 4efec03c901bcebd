package layers

import "unicode/utf8"

// Special tokens of the byte-level tokenizer: IDs 0-255 are bytes.
const (
	BOS int32 = 256 // beginning of sequence
	EOS int32 = 257 // end of sequence
)

// Encode turns text into token IDs: BOS, then one token per byte. Any text works.
func Encode(text string) []int32 {
	ids := make([]int32, 0, len(text)+1)
	ids = append(ids, BOS)
	for i := 0; i < len(text); i++ {
		ids = append(ids, int32(text[i]))
	}
	return ids
}

// Decode turns byte tokens back into text, skipping special tokens. Bytes that do not form
// valid UTF-8 are kept as they are; use DecodeValid for display.
func Decode(ids []int32) string {
	b := make([]byte, 0, len(ids))
	for _, id := range ids {
		if id >= 0 && id < 256 {
			b = append(b, byte(id))
		}
	}
	return string(b)
}

// CompletePrefix returns the length of the longest prefix of b that does not end inside a
// multi-byte UTF-8 character, so streamed text never splits one. Invalid bytes count as
// complete (they will never become valid).
func CompletePrefix(b []byte) int {
	for back := 1; back <= utf8.UTFMax && back <= len(b); back++ {
		c := b[len(b)-back]
		if c&0xC0 == 0x80 { // continuation byte: keep looking for the leading byte
			continue
		}
		need := 1
		switch {
		case c&0xE0 == 0xC0:
			need = 2
		case c&0xF0 == 0xE0:
			need = 3
		case c&0xF8 == 0xF0:
			need = 4
		}
		if need > back {
			return len(b) - back
		}
		return len(b)
	}
	return len(b)
}
