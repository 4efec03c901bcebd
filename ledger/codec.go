package ledger

import (
	"encoding/binary"
	"fmt"

	"github.com/neuroshard/neuroshard/ledger/neuro"
)

// The wire and storage encoding of transactions: fixed-width big-endian integers and
// length-prefixed bytes, one canonical form (decoding then encoding gives the same bytes), a
// hard size limit, and no trailing bytes.

const txVersion = 1

type encoder struct{ b []byte }

func (e *encoder) u8(v byte)      { e.b = append(e.b, v) }
func (e *encoder) u16(v uint16)   { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *encoder) u32(v uint32)   { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64)   { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *encoder) bytes(v []byte) { e.u16(uint16(len(v))); e.b = append(e.b, v...) }
func (e *encoder) raw(v []byte)   { e.b = append(e.b, v...) }

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = fmt.Errorf("%w: truncated", ErrMalformed)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() byte {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) bytes(max int) []byte {
	n := int(d.u16())
	if d.err == nil && n > max {
		d.err = fmt.Errorf("%w: field of %d bytes (max %d)", ErrMalformed, n, max)
		return nil
	}
	return d.take(n)
}

func (t *Tx) encodeBody(e *encoder) {
	e.u8(txVersion)
	e.u8(byte(t.Type))
	e.bytes(t.PubKey)
	e.u64(t.Nonce)
	e.u64(uint64(t.Time))
	e.raw(t.To[:])
	e.u64(uint64(t.Amount))
	e.u64(uint64(t.Fee))
	e.u16(t.Days)
	e.bytes([]byte(t.Memo))
	switch {
	case t.Proof != nil && len(t.Proof.Cosigners) > 0:
		e.u8(4)
		t.Proof.encodeBody(e)
		e.bytes(t.Proof.Sig)
		t.Proof.encodeCosigners(e)
	case t.Proof != nil:
		e.u8(1)
		t.Proof.encodeBody(e)
		e.bytes(t.Proof.Sig)
	case t.Slash != nil:
		e.u8(3)
		e.bytes(t.Peer)
		t.Slash.encode(e)
	case t.Peer != nil || t.PeerSig != nil:
		e.u8(2)
		e.bytes(t.Peer)
		e.bytes(t.PeerSig)
	default:
		e.u8(0)
	}
}

// Encode is the transaction's wire and storage form.
func (t *Tx) Encode() []byte {
	var e encoder
	t.encodeBody(&e)
	e.bytes(t.Sig)
	return e.b
}

// DecodeTx reads a transaction's wire form. It checks the form only (not the signature: see
// Check); it never panics and refuses anything over MaxTxBytes, with trailing bytes, or not in
// canonical form.
func DecodeTx(b []byte) (*Tx, error) {
	if len(b) > MaxTxBytes {
		return nil, fmt.Errorf("%w: %d bytes (max %d)", ErrMalformed, len(b), MaxTxBytes)
	}
	d := decoder{b: b}
	if v := d.u8(); d.err == nil && v != txVersion {
		return nil, fmt.Errorf("%w: version %d", ErrMalformed, v)
	}
	t := &Tx{Type: TxType(d.u8())}
	t.PubKey = d.bytes(32)
	t.Nonce = d.u64()
	t.Time = int64(d.u64())
	copy(t.To[:], d.take(AddressLen))
	t.Amount = neuro.Amount(d.u64())
	t.Fee = neuro.Amount(d.u64())
	t.Days = d.u16()
	t.Memo = string(d.bytes(MaxMemo))
	switch flag := d.u8(); flag {
	case 0:
	case 1, 4:
		t.Proof = decodeProofBody(&d)
		if t.Proof != nil {
			t.Proof.Sig = d.bytes(64)
			if flag == 4 {
				t.Proof.decodeCosigners(&d)
			}
		}
	case 3:
		t.Peer = d.bytes(32)
		t.Slash = decodeSlash(&d)
	case 2:
		t.Peer, t.PeerSig = d.bytes(32), d.bytes(64)
		if d.err == nil && (len(t.Peer) == 0 || len(t.PeerSig) == 0) {
			d.err = fmt.Errorf("%w: empty peer binding", ErrMalformed) // its canonical form is flag 0
		}
	default:
		if d.err == nil {
			d.err = fmt.Errorf("%w: proof flag", ErrMalformed)
		}
	}
	t.Sig = d.bytes(64)
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	return t, nil
}

// encodeWork writes what the proof is for: the part every countersignature shares.
func (p *Proof) encodeWork(e *encoder) {
	e.u8(p.Kind.code())
	e.u16(p.Layer)
	e.u32(p.Units)
	e.raw(p.Work[:])
	e.raw(p.Worker[:])
}

func (p *Proof) encodeBody(e *encoder) {
	p.encodeWork(e)
	e.u64(uint64(p.Time))
	e.bytes(p.Consumer)
}

// encodeCosigners writes the further countersignatures: a count (at least 1), then each.
func (p *Proof) encodeCosigners(e *encoder) {
	e.u8(byte(len(p.Cosigners)))
	for _, c := range p.Cosigners {
		e.bytes(c.Key)
		e.u64(uint64(c.Time))
		e.bytes(c.Sig)
	}
}

func (p *Proof) decodeCosigners(d *decoder) {
	n := int(d.u8())
	if d.err == nil && (n == 0 || n > MaxCosigners) {
		d.err = fmt.Errorf("%w: %d further countersignatures (1..%d)", ErrMalformed, n, MaxCosigners)
		return
	}
	for range n {
		c := Cosig{Key: d.bytes(32)}
		c.Time = int64(d.u64())
		c.Sig = d.bytes(64)
		if d.err != nil {
			return
		}
		p.Cosigners = append(p.Cosigners, c)
	}
}

func decodeProofBody(d *decoder) *Proof {
	p := &Proof{}
	c := d.u8()
	if p.Kind = proofKindOf(c); p.Kind == "" && d.err == nil {
		d.err = fmt.Errorf("%w: proof kind %d", ErrMalformed, c)
		return nil
	}
	p.Layer = d.u16()
	p.Units = d.u32()
	copy(p.Work[:], d.take(16))
	copy(p.Worker[:], d.take(AddressLen))
	p.Time = int64(d.u64())
	p.Consumer = d.bytes(32)
	return p
}

// Encode is the proof's wire form (a receipt handed to its worker): the body and the
// consumer's signature, then the further countersignatures if it has any.
func (p *Proof) Encode() []byte {
	var e encoder
	p.encodeBody(&e)
	e.bytes(p.Sig)
	if len(p.Cosigners) > 0 {
		p.encodeCosigners(&e)
	}
	return e.b
}

// DecodeProof reads a proof's wire form (form only; see Check).
func DecodeProof(b []byte) (*Proof, error) {
	if len(b) > MaxTxBytes {
		return nil, fmt.Errorf("%w: proof of %d bytes", ErrMalformed, len(b))
	}
	d := decoder{b: b}
	p := decodeProofBody(&d)
	if p != nil {
		p.Sig = d.bytes(64)
		if d.err == nil && len(d.b) > 0 {
			p.decodeCosigners(&d)
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	return p, nil
}
