package p2p

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sync/singleflight"
)

// Receipts signed together. A stage that answers many sessions in one batched step signs their
// receipts with one signature: over the list of the receipts' digests (sha256 of each
// Receipt.Message), in the order the stage took them. Each session's answer carries the list,
// its place in it and the signature, so it proves the receipt as a signature of it alone does
// (a digest list cannot be made to name another receipt without a sha256 collision), and a
// fraud proof checks it the same way. A requester whose sessions share a batch verifies the
// signature once: verified lists are remembered, and concurrent checks of one list share one
// verification. One session's answer alone is signed as before.
//
// Wire form of a batch signature: batchMagic, count (1 byte), place (1 byte), count digests
// of 32 bytes, then the signature.

const (
	batchTag   = "neuroshard/forward-receipts/1\x00"
	batchMagic = "\x00NSB"
	// maxBatchSigned bounds the receipts one signature covers (and a batch signature's size:
	// 16 digests and an ed25519 signature take 586 bytes, within maxSignature).
	maxBatchSigned = 16
	// verifiedKept bounds the verified batches remembered.
	verifiedKept = 256
)

// groupSigner signs receipts together. The receipts of one batched computation (SignGroup)
// wait for each other, at most maxGroupWait, and share one signature. Others are signed as
// they come, those that wait while it signs sharing the next signature: the first caller signs
// its own at once, and nobody waits for a batch to fill.
type groupSigner struct {
	mu     sync.Mutex
	queue  []*signReq
	busy   bool
	groups map[uint64]*pendingGroup // receipts of one batched computation, by its ID
	wait   time.Duration            // for the rest of a computation's receipts; 0: maxGroupWait
}

// SignGroup is a ForwardSession that steps in batched computations with other sessions: it
// names the computation of its last step (0: computed alone) and how many sessions the host
// serves it stepped. Their receipts are signed together once all are in (or after
// maxGroupWait): one signature per computation, however the answers' goroutines interleave
// (signed as they came, a batch of 8 took 3-5 signatures, and its requester as many
// verifications).
type SignGroup interface {
	SignGroup() (id uint64, size int)
}

// maxGroupWait bounds how long a receipt waits for the others of its computation.
const maxGroupWait = 2 * time.Millisecond

// pendingGroup is the receipts of one computation that came so far.
type pendingGroup struct {
	reqs  []*signReq
	want  int
	timer *time.Timer
}

type signReq struct {
	msg  []byte
	sig  []byte
	err  error
	done chan struct{}
}

// signReceipt signs a receipt's message, alone or with others that came at the same time.
func (n *Host) signReceipt(msg []byte) ([]byte, error) {
	g := &n.signer
	r := &signReq{msg: msg, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, r)
	if g.busy {
		g.mu.Unlock()
		<-r.done
		return r.sig, r.err
	}
	g.busy = true
	for len(g.queue) > 0 {
		batch := g.queue[:min(len(g.queue), maxBatchSigned)]
		g.queue = g.queue[len(batch):]
		g.mu.Unlock()
		n.signBatch(batch)
		g.mu.Lock()
	}
	g.busy = false
	g.mu.Unlock()
	<-r.done
	return r.sig, r.err
}

// signReceiptIn signs a receipt of a step computed in the batched computation id with size
// sessions this host serves: together with theirs.
func (n *Host) signReceiptIn(msg []byte, id uint64, size int) ([]byte, error) {
	if id == 0 || size < 2 {
		return n.signReceipt(msg)
	}
	g := &n.signer
	r := &signReq{msg: msg, done: make(chan struct{})}
	g.mu.Lock()
	pg := g.groups[id]
	if pg == nil {
		if g.groups == nil {
			g.groups = map[uint64]*pendingGroup{}
		}
		pg = &pendingGroup{want: min(size, maxBatchSigned)}
		g.groups[id] = pg
		wait := g.wait
		if wait == 0 {
			wait = maxGroupWait
		}
		pg.timer = time.AfterFunc(wait, func() { n.flushGroup(id, pg) })
	}
	pg.reqs = append(pg.reqs, r)
	full := len(pg.reqs) >= pg.want
	if full {
		delete(g.groups, id)
	}
	g.mu.Unlock()
	if full {
		pg.timer.Stop()
		n.signBatch(pg.reqs)
	}
	<-r.done
	return r.sig, r.err
}

// flushGroup signs a computation's receipts that came within maxGroupWait, unless they were
// signed already.
func (n *Host) flushGroup(id uint64, pg *pendingGroup) {
	g := &n.signer
	g.mu.Lock()
	if g.groups[id] != pg {
		g.mu.Unlock()
		return
	}
	delete(g.groups, id)
	g.mu.Unlock()
	n.signBatch(pg.reqs)
}

// signBatch signs one group of receipts and hands each its signature.
func (n *Host) signBatch(batch []*signReq) {
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	if len(batch) == 1 {
		batch[0].sig, batch[0].err = n.Sign(batch[0].msg)
		return
	}
	digests := make([]Digest, len(batch))
	for i, r := range batch {
		digests[i] = sha256.Sum256(r.msg)
	}
	sig, err := n.Sign(batchStatement(digests))
	for i, r := range batch {
		if r.err = err; err == nil {
			r.sig = batchSignature(digests, i, sig)
		}
	}
}

// batchStatement is what a stage signs for a batch of receipts.
func batchStatement(digests []Digest) []byte {
	b := make([]byte, 0, len(batchTag)+32*len(digests))
	b = append(b, batchTag...)
	for _, d := range digests {
		b = append(b, d[:]...)
	}
	return b
}

func batchSignature(digests []Digest, place int, sig []byte) []byte {
	b := make([]byte, 0, len(batchMagic)+2+32*len(digests)+len(sig))
	b = append(b, batchMagic...)
	b = append(b, byte(len(digests)), byte(place))
	for _, d := range digests {
		b = append(b, d[:]...)
	}
	return append(b, sig...)
}

// parseBatchSignature reads a batch signature's parts; ok is false for a plain signature.
func parseBatchSignature(b []byte) (digests []Digest, place int, sig []byte, ok bool, err error) {
	if !bytes.HasPrefix(b, []byte(batchMagic)) {
		return nil, 0, nil, false, nil
	}
	b = b[len(batchMagic):]
	if len(b) < 2 {
		return nil, 0, nil, true, fmt.Errorf("%w: short batch signature", ErrBadSignature)
	}
	count, place := int(b[0]), int(b[1])
	b = b[2:]
	if count < 2 || count > maxBatchSigned || place >= count || len(b) <= 32*count {
		return nil, 0, nil, true, fmt.Errorf("%w: batch signature of %d receipts, place %d, %d bytes", ErrBadSignature, count, place, len(b))
	}
	digests = make([]Digest, count)
	for i := range digests {
		copy(digests[i][:], b[32*i:])
	}
	return digests, place, b[32*count:], true, nil
}

// verified remembers batch statements whose signature verified, and lets concurrent checks of
// one statement share one verification.
var verified = struct {
	mu    sync.Mutex
	keys  map[Digest]bool
	order []Digest
	group singleflight.Group
}{keys: map[Digest]bool{}}

// VerifyReceipt checks that sig is p's signature of a receipt's message: a plain signature,
// or a batch signature whose list names the message's digest.
func VerifyReceipt(p peer.ID, msg, sig []byte) error {
	digests, place, bsig, ok, err := parseBatchSignature(sig)
	if err != nil {
		return fmt.Errorf("%w from %s", err, p)
	}
	if !ok {
		return VerifyPeer(p, msg, sig)
	}
	if digests[place] != sha256.Sum256(msg) {
		return fmt.Errorf("%w: from %s: the batch does not name this receipt", ErrBadSignature, p)
	}
	stmt := batchStatement(digests)
	h := sha256.New()
	h.Write([]byte(p))
	h.Write(stmt)
	h.Write(bsig)
	var key Digest
	h.Sum(key[:0])
	verified.mu.Lock()
	seen := verified.keys[key]
	verified.mu.Unlock()
	if seen {
		return nil
	}
	_, err, _ = verified.group.Do(string(key[:]), func() (any, error) {
		if err := VerifyPeer(p, stmt, bsig); err != nil {
			return nil, err
		}
		verified.mu.Lock()
		defer verified.mu.Unlock()
		if !verified.keys[key] {
			verified.keys[key] = true
			verified.order = append(verified.order, key)
			if len(verified.order) > verifiedKept {
				delete(verified.keys, verified.order[0])
				verified.order = verified.order[1:]
			}
		}
		return nil, nil
	})
	return err
}
