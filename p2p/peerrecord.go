package p2p

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Peer records. Provider records say who holds a layer and nothing else; a node also puts a
// signed record of its own in the DHT, under "/nsnode/<peer ID>": the model and span it
// serves, its memory budget, and the throughput it measured on this machine, so peers route by
// speed and weigh spans by capacity instead of by head count (Petals does the same with its
// server infos). Every node's DHT checks a record before storing or returning it: signed by
// the key of the peer it names, every field in range, at most MaxPeerRecord bytes. A record
// is its holder's claim; the pipeline's timings and audits check what it does.

// PeerRecordNamespace is the DHT namespace of peer records.
const PeerRecordNamespace = "nsnode"

// MaxPeerRecord bounds an encoded record.
const MaxPeerRecord = 1024

// peerRecordTag separates the records' signatures from every other use of a peer's key.
const peerRecordTag = "neuroshard/peer-record/1\x00"

// maxThroughput bounds a claimed throughput (tokens per second).
const maxThroughput = 1e9

// PeerRecordKey is the DHT key of a peer's record.
func PeerRecordKey(id peer.ID) string { return "/" + PeerRecordNamespace + "/" + id.String() }

// Throughput is a machine's measured speed on the model, in tokens per second (0: not
// measured).
type Throughput struct {
	Forward, Train, Decode, DecodeBatch8, Prefill float64
}

// PeerRecord is what a node tells the network about itself.
type PeerRecord struct {
	Peer        peer.ID
	Seq         uint64 // newer records of a peer have larger values (its clock at signing, in ns)
	Model       string
	First, Last int   // the span it serves; -1, -1 for none
	MemoryBytes int64 // its memory budget for weights
	UsedBytes   int64 // what its span's weights take
	Backend     string
	Threads     int
	Throughput  Throughput
	Sig         []byte
}

// Holds tells whether the record serves a span.
func (r PeerRecord) Holds() bool { return r.First >= 0 }

// message is the byte string a record's signature covers.
func (r PeerRecord) message() []byte {
	b := []byte(peerRecordTag)
	idb := []byte(r.Peer)
	for _, s := range [][]byte{idb, []byte(r.Model), []byte(r.Backend)} {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	b = binary.LittleEndian.AppendUint64(b, r.Seq)
	b = binary.LittleEndian.AppendUint32(b, uint32(int32(r.First)))
	b = binary.LittleEndian.AppendUint32(b, uint32(int32(r.Last)))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.MemoryBytes))
	b = binary.LittleEndian.AppendUint64(b, uint64(r.UsedBytes))
	b = binary.LittleEndian.AppendUint32(b, uint32(r.Threads))
	t := r.Throughput
	for _, f := range []float64{t.Forward, t.Train, t.Decode, t.DecodeBatch8, t.Prefill} {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	return b
}

// Encode is the record on the wire: its signed message, then its signature (uint16 length).
func (r PeerRecord) Encode() []byte {
	b := r.message()
	b = binary.LittleEndian.AppendUint16(b, uint16(len(r.Sig)))
	return append(b, r.Sig...)
}

// ErrPeerRecord marks a record that fails its checks.
var ErrPeerRecord = errors.New("p2p: bad peer record")

// check tells whether every field is in range.
func (r PeerRecord) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrPeerRecord, fmt.Sprintf(format, args...))
	}
	switch {
	case r.Seq == 0:
		return bad("no sequence number")
	case r.Model == "" || len(r.Model) > 64:
		return bad("model name of %d bytes", len(r.Model))
	case len(r.Backend) > 32:
		return bad("backend name of %d bytes", len(r.Backend))
	case r.First == -1 && r.Last == -1:
	case r.First < 0 || r.Last < r.First || r.Last >= 1<<16:
		return bad("span %d-%d", r.First, r.Last)
	}
	switch {
	case r.MemoryBytes < 0 || r.UsedBytes < 0:
		return bad("negative memory")
	case r.Threads < 0 || r.Threads > 1<<16:
		return bad("%d threads", r.Threads)
	}
	t := r.Throughput
	for _, f := range []float64{t.Forward, t.Train, t.Decode, t.DecodeBatch8, t.Prefill} {
		if math.IsNaN(f) || f < 0 || f > maxThroughput {
			return bad("throughput %v", f)
		}
	}
	return nil
}

// recordReader reads a record's fields, failing on the first short read.
type recordReader struct {
	b   []byte
	err error
}

func (r *recordReader) take(n int) []byte {
	if r.err != nil || n > len(r.b) {
		r.err = fmt.Errorf("%w: truncated", ErrPeerRecord)
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *recordReader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *recordReader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *recordReader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *recordReader) bytes() []byte { return r.take(int(r.u16())) }

// DecodePeerRecord parses a record and checks it: every field in range, and the signature of
// the peer it names.
func DecodePeerRecord(b []byte) (PeerRecord, error) {
	var r PeerRecord
	if len(b) > MaxPeerRecord {
		return r, fmt.Errorf("%w: %d bytes (at most %d)", ErrPeerRecord, len(b), MaxPeerRecord)
	}
	rd := &recordReader{b: b}
	if tag := rd.take(len(peerRecordTag)); rd.err == nil && string(tag) != peerRecordTag {
		return r, fmt.Errorf("%w: not a peer record", ErrPeerRecord)
	}
	idb, model, backend := rd.bytes(), rd.bytes(), rd.bytes()
	r.Seq = rd.u64()
	r.First, r.Last = int(int32(rd.u32())), int(int32(rd.u32()))
	r.MemoryBytes, r.UsedBytes = int64(rd.u64()), int64(rd.u64())
	r.Threads = int(rd.u32())
	t := &r.Throughput
	for _, f := range []*float64{&t.Forward, &t.Train, &t.Decode, &t.DecodeBatch8, &t.Prefill} {
		*f = math.Float64frombits(rd.u64())
	}
	msgLen := len(b) - len(rd.b)
	sig := rd.bytes()
	if rd.err != nil {
		return PeerRecord{}, rd.err
	}
	if len(rd.b) != 0 {
		return PeerRecord{}, fmt.Errorf("%w: %d bytes after the signature", ErrPeerRecord, len(rd.b))
	}
	id, err := peer.IDFromBytes(idb)
	if err != nil {
		return PeerRecord{}, fmt.Errorf("%w: peer ID: %v", ErrPeerRecord, err)
	}
	r.Peer, r.Model, r.Backend = id, string(model), string(backend)
	if err := r.check(); err != nil {
		return PeerRecord{}, err
	}
	if len(sig) == 0 || len(sig) > maxSignature {
		return PeerRecord{}, fmt.Errorf("%w: signature of %d bytes", ErrPeerRecord, len(sig))
	}
	if err := VerifyPeer(id, b[:msgLen], sig); err != nil {
		return PeerRecord{}, fmt.Errorf("%w: %v", ErrPeerRecord, err)
	}
	r.Sig = append([]byte(nil), sig...)
	return r, nil
}

// peerRecordValidator is the DHT's validator of the peer-record namespace.
type peerRecordValidator struct{}

// Validate accepts a record only under its own peer's key.
func (peerRecordValidator) Validate(key string, value []byte) error {
	r, err := DecodePeerRecord(value)
	if err != nil {
		return err
	}
	if key != PeerRecordKey(r.Peer) {
		return fmt.Errorf("%w: the record of %s under key %q", ErrPeerRecord, r.Peer, key)
	}
	return nil
}

// Select picks the newest valid record.
func (peerRecordValidator) Select(key string, vals [][]byte) (int, error) {
	best, bestSeq := -1, uint64(0)
	for i, v := range vals {
		if r, err := DecodePeerRecord(v); err == nil && (best < 0 || r.Seq > bestSeq) {
			best, bestSeq = i, r.Seq
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("%w: no valid record among %d", ErrPeerRecord, len(vals))
	}
	return best, nil
}

// peerRecordOption registers the validator with the DHT.
func peerRecordOption() dht.Option {
	return dht.NamespacedValidator(PeerRecordNamespace, peerRecordValidator{})
}

// SetRecord signs r as this node's record (its Peer and Seq are filled in) and puts it in the
// DHT now, in the background, and again with every announcement of the node's layers.
func (n *Host) SetRecord(r PeerRecord) error {
	r, err := n.SignRecord(r)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.record = r
	n.mu.Unlock()
	n.kickAnnounce()
	return nil
}

// SignRecord signs r as this node's, numbered now, without making it the record the node
// publishes: a claim shown in a request (the span a node is moving to, before it holds it).
func (n *Host) SignRecord(r PeerRecord) (PeerRecord, error) {
	n.mu.Lock()
	seq := max(uint64(time.Now().UnixNano()), n.record.Seq+1)
	n.mu.Unlock()
	r.Peer, r.Seq, r.Sig = n.h.ID(), seq, nil
	if err := r.check(); err != nil {
		return r, err
	}
	sig, err := n.Sign(r.message())
	if err != nil {
		return r, err
	}
	r.Sig = sig
	return r, nil
}

// Record is this node's own record (Seq 0 before SetRecord).
func (n *Host) Record() PeerRecord {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.record
}

// putRecord puts this node's record in the DHT, if it has one.
func (n *Host) putRecord(ctx context.Context) error {
	r := n.Record()
	if r.Seq == 0 {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, provideTimeout)
	defer cancel()
	return n.dht.PutValue(pctx, PeerRecordKey(r.Peer), r.Encode())
}

// PeerRecord finds a peer's record in the DHT (this node's own without a lookup).
func (n *Host) PeerRecord(ctx context.Context, id peer.ID) (PeerRecord, error) {
	if n.isClosed() {
		return PeerRecord{}, ErrClosed
	}
	if id == n.h.ID() {
		if r := n.Record(); r.Seq != 0 {
			return r, nil
		}
		return PeerRecord{}, fmt.Errorf("p2p: no record of this node yet")
	}
	b, err := n.dht.GetValue(ctx, PeerRecordKey(id), dht.Quorum(1))
	if err != nil {
		return PeerRecord{}, fmt.Errorf("p2p: record of %s: %w", id, err)
	}
	return DecodePeerRecord(b)
}
