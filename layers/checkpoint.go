package layers

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"

	"github.com/neuroshard/neuroshard/internal/atomicfile"
)

// ErrBadCheckpoint is returned for a checkpoint that is truncated, malformed, for another
// model or span, or whose weights do not match its hash.
var ErrBadCheckpoint = errors.New("layers: bad checkpoint")

// checkpointMagic starts every checkpoint and encoded parameter set.
const checkpointMagic = "NSPARAM1"

// maxHeaderBytes bounds the JSON header, so a corrupt length cannot make the reader allocate.
const maxHeaderBytes = 1 << 20

// CheckpointMeta describes the weights in a checkpoint.
type CheckpointMeta struct {
	Model  string      `json:"model"`
	Span   Span        `json:"span"`
	Hash   string      `json:"hash"`
	Step   int64       `json:"step"`  // inner optimizer steps taken
	Round  int64       `json:"round"` // DiLoCo rounds completed
	Params []ParamSpec `json:"params"`
}

// EncodeParams writes parameters with their metadata: the magic, a little-endian uint32 header
// length, the JSON header, then every tensor's values as little-endian float32 in order.
func EncodeParams(w io.Writer, meta CheckpointMeta, p *Params) error {
	meta.Params = p.Specs
	meta.Hash = p.Hash()
	hdr, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	bw.WriteString(checkpointMagic)
	binary.Write(bw, binary.LittleEndian, uint32(len(hdr)))
	bw.Write(hdr)
	for _, v := range p.Values {
		bw.Write(float32Bytes(v))
	}
	return bw.Flush()
}

// DecodeParams reads what EncodeParams wrote, for the given model and span: the specs must be
// exactly the span's, the values finite and their hash the header's. Nothing is allocated
// beyond what the expected specs need.
func DecodeParams(r io.Reader, cfg Config, span Span) (CheckpointMeta, *Params, error) {
	var meta CheckpointMeta
	magic := make([]byte, len(checkpointMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != checkpointMagic {
		return meta, nil, fmt.Errorf("%w: not a parameter file", ErrBadCheckpoint)
	}
	var n uint32
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil || n > maxHeaderBytes {
		return meta, nil, fmt.Errorf("%w: header length", ErrBadCheckpoint)
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return meta, nil, fmt.Errorf("%w: truncated header", ErrBadCheckpoint)
	}
	if err := json.Unmarshal(hdr, &meta); err != nil {
		return meta, nil, fmt.Errorf("%w: header: %v", ErrBadCheckpoint, err)
	}
	if meta.Model != cfg.Name || meta.Span != span {
		return meta, nil, fmt.Errorf("%w: holds %s layers %s, want %s layers %s", ErrBadCheckpoint, meta.Model, meta.Span, cfg.Name, span)
	}
	specs := cfg.ParamSpecs(span)
	if !slices.EqualFunc(meta.Params, specs, func(a, b ParamSpec) bool { return a.Name == b.Name && slices.Equal(a.Dims, b.Dims) }) {
		return meta, nil, fmt.Errorf("%w: tensors do not match the model's", ErrBadCheckpoint)
	}
	p := &Params{Specs: specs, Values: make([][]float32, len(specs))}
	buf := make([]byte, 1<<16)
	for i, s := range specs {
		v := make([]float32, s.Size())
		for off := 0; off < len(v); {
			k := min(len(v)-off, len(buf)/4)
			if _, err := io.ReadFull(r, buf[:4*k]); err != nil {
				return meta, nil, fmt.Errorf("%w: truncated in %s", ErrBadCheckpoint, s.Name)
			}
			for j := 0; j < k; j++ {
				v[off+j] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*j:]))
			}
			off += k
		}
		p.Values[i] = v
	}
	if err := p.Check(specs); err != nil {
		return meta, nil, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	if got := p.Hash(); got != meta.Hash {
		return meta, nil, fmt.Errorf("%w: weights hash to %s, the header says %s", ErrBadCheckpoint, got[:12], short(meta.Hash))
	}
	return meta, p, nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// SaveCheckpoint writes the stage's parameters to path atomically (a crash leaves the old
// checkpoint or the new one, never a mix).
func SaveCheckpoint(path string, meta CheckpointMeta, p *Params) error {
	var buf bytes.Buffer
	if err := EncodeParams(&buf, meta, p); err != nil {
		return err
	}
	return atomicfile.Write(path, buf.Bytes(), 0o600)
}

// LoadCheckpoint reads and verifies a checkpoint of the given model and span.
func LoadCheckpoint(path string, cfg Config, span Span) (CheckpointMeta, *Params, error) {
	f, err := os.Open(path)
	if err != nil {
		return CheckpointMeta{}, nil, err
	}
	defer f.Close()
	return DecodeParams(bufio.NewReaderSize(f, 1<<16), cfg, span)
}

// MaxCheckpointBytes bounds a span's encoded checkpoint: its float32 weights twice over (the
// encoding with its names and dims stays well under that) plus room for the header. A peer
// offering more is refused before any of it is read.
func (c Config) MaxCheckpointBytes(span Span) int64 {
	var n int64
	for _, s := range c.ParamSpecs(span) {
		n += int64(s.Size())
	}
	return 8*n + 1<<20
}
