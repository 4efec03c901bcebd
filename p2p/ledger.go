package p2p

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The ledger protocol (/neuroshard/ledger/1.0.0) carries what the NEURO ledger needs besides
// gossip, one request and one answer per stream:
//   - sync: a page of the peer's transaction log after a cursor, so a node that joins or comes
//     back catches up on what it missed;
//   - wallet: the address the peer is paid at;
//   - receipt: a proof of work the peer did for us, countersigned by us, for it to claim.
//
// The transactions and proofs travel as the ledger's own encoding; this package does not
// read them.
const (
	frameLedgerSync    byte = 16 // client: LedgerSyncRequest (JSON)
	frameLedgerPage    byte = 17 // server: u64 head, u32 count, count x (u32 length, bytes)
	frameWalletAsk     byte = 18 // client: empty
	frameWalletAnswer  byte = 19 // server: WalletAnswer (JSON)
	frameReceipt       byte = 20 // client: an encoded proof
	frameReceiptAnswer byte = 21 // server: ReceiptAnswer (JSON)

	// MaxLedgerPage bounds the transactions of one sync page, and MaxLedgerPageBytes its size.
	MaxLedgerPage      = 1024
	MaxLedgerPageBytes = 1 << 20
	// maxLedgerItem bounds one transaction or proof.
	maxLedgerItem = 4 << 10
	// LedgerTimeout bounds one ledger request, opening included.
	LedgerTimeout = 20 * time.Second
)

// LedgerSyncRequest asks for the transactions of a peer's log after After.
type LedgerSyncRequest struct {
	Network string `json:"network"` // the ledger's network ID; a peer of another network refuses
	After   uint64 `json:"after"`
	Max     int    `json:"max"`
}

// LedgerPage is a run of a peer's log: Txs follow the requested cursor in order; Head is the
// length of the peer's log.
type LedgerPage struct {
	Head uint64
	Txs  [][]byte
}

// WalletAnswer tells where a peer is paid.
type WalletAnswer struct {
	Network string `json:"network"`
	Address string `json:"address"`
}

// ReceiptAnswer tells whether a peer took a receipt (and what it claimed with it).
type ReceiptAnswer struct {
	Accepted bool   `json:"accepted"`
	TxID     string `json:"tx_id,omitempty"`
}

// LedgerService answers the ledger protocol. Errors go back to the client as RemoteError.
type LedgerService interface {
	Page(from peer.ID, req LedgerSyncRequest) (LedgerPage, error)
	Wallet(from peer.ID) (WalletAnswer, error)
	Receipt(from peer.ID, proof []byte) (ReceiptAnswer, error)
}

// ServeLedger registers the ledger protocol's handler.
func (n *Host) ServeLedger(svc LedgerService) {
	n.h.SetStreamHandler(ProtocolLedger, func(s network.Stream) {
		defer s.Close()
		from := s.Conn().RemotePeer()
		s.SetReadDeadline(time.Now().Add(ForwardOpenTimeout))
		typ, payload, err := ReadFrame(s, maxLedgerItem)
		if err != nil {
			s.Reset()
			return
		}
		var rt byte
		var reply []byte
		switch typ {
		case frameLedgerSync:
			var req LedgerSyncRequest
			if err = json.Unmarshal(payload, &req); err != nil {
				s.Reset()
				return
			}
			req.Max = min(max(req.Max, 1), MaxLedgerPage)
			var page LedgerPage
			if page, err = svc.Page(from, req); err == nil {
				rt, reply = frameLedgerPage, encodeLedgerPage(page)
			}
		case frameWalletAsk:
			var a WalletAnswer
			if a, err = svc.Wallet(from); err == nil {
				rt = frameWalletAnswer
				reply, err = jsonBytes(a)
			}
		case frameReceipt:
			var a ReceiptAnswer
			if a, err = svc.Receipt(from, payload); err == nil {
				rt = frameReceiptAnswer
				reply, err = jsonBytes(a)
			}
		default:
			s.Reset()
			return
		}
		s.SetWriteDeadline(time.Now().Add(LedgerTimeout))
		if err != nil {
			writeJSONFrame(s, frameError, remoteErr(err))
			return
		}
		if WriteFrame(s, rt, reply) != nil {
			s.Reset()
		}
	})
}

func encodeLedgerPage(p LedgerPage) []byte {
	out := binary.LittleEndian.AppendUint64(nil, p.Head)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(p.Txs)))
	for _, t := range p.Txs {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(t)))
		out = append(out, t...)
	}
	return out
}

// DecodeLedgerPage reads a sync page, refusing anything malformed or over the limits.
func DecodeLedgerPage(b []byte) (LedgerPage, error) {
	var p LedgerPage
	if len(b) > MaxLedgerPageBytes+MaxLedgerPage*4+12 || len(b) < 12 {
		return p, fmt.Errorf("%w: ledger page of %d bytes", ErrFrame, len(b))
	}
	p.Head = binary.LittleEndian.Uint64(b)
	count := binary.LittleEndian.Uint32(b[8:])
	if count > MaxLedgerPage {
		return p, fmt.Errorf("%w: %d transactions in a page", ErrFrame, count)
	}
	b = b[12:]
	p.Txs = make([][]byte, 0, count)
	for range count {
		if len(b) < 4 {
			return p, fmt.Errorf("%w: truncated ledger page", ErrFrame)
		}
		l := binary.LittleEndian.Uint32(b)
		if l > maxLedgerItem || int(l) > len(b)-4 {
			return p, fmt.Errorf("%w: transaction of %d bytes", ErrFrame, l)
		}
		p.Txs = append(p.Txs, b[4:4+l:4+l])
		b = b[4+l:]
	}
	if len(b) != 0 {
		return p, fmt.Errorf("%w: %d trailing bytes in a ledger page", ErrFrame, len(b))
	}
	return p, nil
}

// ask sends one ledger request to a peer and reads its answer.
func (n *Host) ask(ctx context.Context, p peer.ID, typ byte, payload []byte, want byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, LedgerTimeout)
	defer cancel()
	s, err := n.newStream(ctx, p, ProtocolLedger)
	if err != nil {
		return nil, fmt.Errorf("p2p: ledger stream to %s: %w", p, err)
	}
	defer s.Close()
	deadline, _ := ctx.Deadline()
	reply, err := call(s, deadline, typ, payload, want)
	if err != nil {
		return nil, fmt.Errorf("p2p: ledger request to %s: %w", p, err)
	}
	return reply, nil
}

// LedgerSync fetches a page of a peer's transaction log.
func (n *Host) LedgerSync(ctx context.Context, p peer.ID, req LedgerSyncRequest) (LedgerPage, error) {
	b, _ := json.Marshal(req)
	reply, err := n.ask(ctx, p, frameLedgerSync, b, frameLedgerPage)
	if err != nil {
		return LedgerPage{}, err
	}
	return DecodeLedgerPage(reply)
}

// WalletOf asks a peer where it is paid.
func (n *Host) WalletOf(ctx context.Context, p peer.ID) (WalletAnswer, error) {
	var a WalletAnswer
	reply, err := n.ask(ctx, p, frameWalletAsk, nil, frameWalletAnswer)
	if err == nil {
		if err = json.Unmarshal(reply, &a); err != nil {
			err = fmt.Errorf("%w: wallet answer from %s", ErrFrame, p)
		}
	}
	return a, err
}

// SendReceipt hands a peer a countersigned proof of the work it did for this node.
func (n *Host) SendReceipt(ctx context.Context, p peer.ID, proof []byte) (ReceiptAnswer, error) {
	var a ReceiptAnswer
	reply, err := n.ask(ctx, p, frameReceipt, proof, frameReceiptAnswer)
	if err == nil {
		if err = json.Unmarshal(reply, &a); err != nil {
			err = fmt.Errorf("%w: receipt answer from %s", ErrFrame, p)
		}
	}
	return a, err
}
