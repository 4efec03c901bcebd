package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/neuroshard/neuroshard/ledger/neuro"
)

// ErrParams is returned for network parameters that cannot run a ledger.
var ErrParams = errors.New("ledger: bad network parameters")

// Params are the network's ledger rules. Every node of a network must run the same Params
// (their ID names the network's gossip topic and is stored in each ledger), or their ledgers
// would drift apart.
type Params struct {
	// Genesis funds accounts when a ledger is created (a local test network funds its wallets
	// here; the default network starts empty and mints only rewards).
	Genesis map[Address]neuro.Amount `json:"genesis"`
	// FeeBasisPoints of a send or payment is burned as its fee (10 = 0.1%), at least MinFee.
	FeeBasisPoints int64        `json:"fee_basis_points"`
	MinFee         neuro.Amount `json:"min_fee"`
	// Rewards per unit of countersigned work, by proof kind (forward and backward: per token;
	// round: per DiLoCo round). A kind whose reward is zero mints nothing: its proofs are
	// receipts only.
	Rewards map[ProofKind]neuro.Amount `json:"rewards"`
	// MaxProofUnits caps the units one proof can claim.
	MaxProofUnits uint32 `json:"max_proof_units"`
	// RoundRewardMillis spaces a worker's round rewards: one per this many milliseconds of
	// the proofs' time, however many replicas countersign a round and however many rounds
	// a pair of wallets invents (a worker's transactions apply in nonce order everywhere, so
	// every ledger refuses the same claims). 0: no spacing.
	RoundRewardMillis int64 `json:"round_reward_ms"`
	// RoundQuorum is how many members of a DiLoCo round besides its worker must countersign
	// a round proof (each one that ended the round with the same weights vouches for the
	// others it used): a pair of keys that sign each other's rounds mints nothing.
	RoundQuorum int `json:"round_quorum"`
	// RoundRewardStake, when above 0, mints a round reward only to a worker whose own account
	// has at least this much staked when the claim applies: two colluding keys that invent
	// rounds for each other then earn nothing unless each locks that much (a stake changes by
	// the account's own transactions, so every ledger decides alike). The default network,
	// which starts with no NEURO, cannot ask it: nobody could ever earn the first stake.
	RoundRewardStake neuro.Amount `json:"round_reward_stake,omitempty"`
	// PricePerToken is what an inference costs its requester per token it runs through the
	// model (prompt and generated), split among the peers that served it by the layers each
	// ran. The default network, which starts with no NEURO, serves for free.
	PricePerToken neuro.Amount `json:"price_per_token"`
	// CooldownDays is how long unstaked NEURO stays pending before it is available.
	CooldownDays int `json:"cooldown_days"`
	// MaxStakeDays bounds a stake's lock.
	MaxStakeDays int `json:"max_stake_days"`
}

// DefaultParams are the rules of the default network.
func DefaultParams() Params {
	return Params{
		Genesis:        map[Address]neuro.Amount{},
		FeeBasisPoints: 10,
		MinFee:         1, // one micro-NEURO: no free spam
		// Work along a pipeline (forward, backward) mints nothing: a requester pays the stages
		// that serve it (PricePerToken), so two wallets that countersign each other's work
		// move NEURO between them and never create any. The network mints only for DiLoCo
		// rounds, one unit per proof.
		Rewards: map[ProofKind]neuro.Amount{
			ProofForward:  0,
			ProofBackward: 0,
			ProofRound:    50_000, // 0.05 NEURO per DiLoCo round taken part in
		},
		MaxProofUnits:     1 << 16,
		RoundRewardMillis: 30_000, // DiLoCo rounds take minutes; faster ones earn once per 30 s
		RoundQuorum:       2,      // a round of three replicas at least
		PricePerToken:     0,
		CooldownDays:      7,
		MaxStakeDays:      365,
	}
}

// Validate checks that the parameters are usable.
func (p Params) Validate() error {
	var total neuro.Amount
	for a, v := range p.Genesis {
		if v <= 0 || v > neuro.MaxAmount {
			return fmt.Errorf("%w: genesis amount %s for %s", ErrParams, v, a)
		}
		if total += v; total > neuro.MaxAmount {
			return fmt.Errorf("%w: genesis total above %s", ErrParams, neuro.MaxAmount)
		}
	}
	switch {
	case p.FeeBasisPoints < 0 || p.FeeBasisPoints > 10_000:
		return fmt.Errorf("%w: fee_basis_points %d (0..10000)", ErrParams, p.FeeBasisPoints)
	case p.MinFee < 0 || p.MinFee > neuro.MaxAmount:
		return fmt.Errorf("%w: min_fee %s", ErrParams, p.MinFee)
	case p.RoundRewardStake < 0 || p.RoundRewardStake > neuro.MaxAmount:
		return fmt.Errorf("%w: round_reward_stake %s", ErrParams, p.RoundRewardStake)
	case p.PricePerToken < 0 || p.PricePerToken > neuro.MaxAmount:
		return fmt.Errorf("%w: price_per_token %s", ErrParams, p.PricePerToken)
	case p.CooldownDays < 0 || p.CooldownDays > 365:
		return fmt.Errorf("%w: cooldown_days %d (0..365)", ErrParams, p.CooldownDays)
	case p.MaxStakeDays < 1 || p.MaxStakeDays > 3650:
		return fmt.Errorf("%w: max_stake_days %d (1..3650)", ErrParams, p.MaxStakeDays)
	case p.RoundQuorum < 1 || p.RoundQuorum > 1+MaxCosigners:
		return fmt.Errorf("%w: round_quorum %d (1..%d)", ErrParams, p.RoundQuorum, 1+MaxCosigners)
	case p.MaxProofUnits == 0:
		return fmt.Errorf("%w: max_proof_units must be positive", ErrParams)
	}
	for k, r := range p.Rewards {
		if !k.valid() || r < 0 || neuro.Amount(p.MaxProofUnits)*r > neuro.MaxAmount/1000 {
			return fmt.Errorf("%w: reward %s for %q", ErrParams, r, k)
		}
	}
	return nil
}

// ID names the network: a hash of the canonical JSON of the parameters (map keys sorted by
// encoding/json), so two nodes agree on it exactly when they run the same rules.
func (p Params) ID() string {
	b, _ := json.Marshal(p)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// roundQuorum is RoundQuorum, at least 1 (Params built in code may leave it 0).
func (p Params) roundQuorum() int { return max(p.RoundQuorum, 1) }

// Fee is the fee a send or payment of amount must burn at least.
func (p Params) Fee(amount neuro.Amount) neuro.Amount {
	// amount <= MaxAmount = 1e18, times at most 1e4 would overflow int64: divide first.
	f := amount/10_000*neuro.Amount(p.FeeBasisPoints) + amount%10_000*neuro.Amount(p.FeeBasisPoints)/10_000
	return max(f, p.MinFee)
}

// Multiplier is the reward multiplier of a stake locked for days: 1 + days/60, at most 3
// (30 days: 1.5, as the API reference shows).
func Multiplier(days int) float64 {
	return min(1+float64(days)/60, 3)
}

// genesisTotal is the NEURO minted by the genesis allocation.
func (p Params) genesisTotal() neuro.Amount {
	var t neuro.Amount
	for _, v := range p.Genesis {
		t += v
	}
	return t
}

// sortedGenesis lists the genesis accounts in address order, for a deterministic first write.
func (p Params) sortedGenesis() []Address {
	out := make([]Address, 0, len(p.Genesis))
	for a := range p.Genesis {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Address) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// LoadParams reads network parameters from a JSON file; fields it leaves out keep their
// defaults.
func LoadParams(path string) (Params, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Params{}, err
	}
	p := DefaultParams()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Params{}, fmt.Errorf("%w: %s: %v", ErrParams, path, err)
	}
	if p.Genesis == nil {
		p.Genesis = map[Address]neuro.Amount{}
	}
	return p, p.Validate()
}
