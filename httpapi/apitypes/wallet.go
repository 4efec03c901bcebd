package apitypes

import "github.com/neuroshard/neuroshard/ledger/neuro"

// Balances are an account's NEURO by state.
type Balances struct {
	Available neuro.Amount `json:"available"`
	Staked    neuro.Amount `json:"staked"`
	Pending   neuro.Amount `json:"pending"` // unstaked, waiting out the cooldown
	Total     neuro.Amount `json:"total"`
}

// Stake describes an account's current stake.
type Stake struct {
	Amount       neuro.Amount `json:"amount"`
	DurationDays int          `json:"duration_days"`
	StartDate    string       `json:"start_date"`
	UnlockDate   string       `json:"unlock_date"`
	Multiplier   float64      `json:"multiplier"`
}

// WalletBalance is GET /wallet/balance.
type WalletBalance struct {
	Address  string   `json:"address"`
	Balances Balances `json:"balances"`
	Staking  *Stake   `json:"staking"` // null when nothing is staked
}

// SendRequest is POST /wallet/send.
type SendRequest struct {
	To     string       `json:"to"`
	Amount neuro.Amount `json:"amount"`
	Memo   string       `json:"memo"`
}

// SendResult answers a send.
type SendResult struct {
	TransactionID string       `json:"transaction_id"`
	From          string       `json:"from"`
	To            string       `json:"to"`
	Amount        neuro.Amount `json:"amount"`
	Fee           neuro.Amount `json:"fee"`
	Memo          string       `json:"memo"`
	Nonce         uint64       `json:"nonce"`
	Status        string       `json:"status"` // "confirmed": applied durably to this node's ledger
	Timestamp     string       `json:"timestamp"`
}

// Transaction is one entry of an account's history; Amount is signed from the account's view.
type Transaction struct {
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	Amount    neuro.Amount   `json:"amount"`
	Fee       neuro.Amount   `json:"fee,omitempty"`
	From      string         `json:"from,omitempty"`
	To        string         `json:"to,omitempty"`
	Memo      string         `json:"memo,omitempty"`
	Nonce     uint64         `json:"nonce"`
	Timestamp string         `json:"timestamp"`
	Details   map[string]any `json:"details,omitempty"`
}

// TransactionList is GET /wallet/transactions.
type TransactionList struct {
	Transactions []Transaction `json:"transactions"`
	Total        int           `json:"total"`
	Limit        int           `json:"limit"`
	Offset       int           `json:"offset"`
}

// StakeRequest is POST /wallet/stake.
type StakeRequest struct {
	Amount       neuro.Amount `json:"amount"`
	DurationDays int          `json:"duration_days"`
}

// StakeResult answers a stake.
type StakeResult struct {
	Success       bool   `json:"success"`
	TransactionID string `json:"transaction_id"`
	Stake         Stake  `json:"stake"`
	NewBalance    struct {
		Available neuro.Amount `json:"available"`
		Staked    neuro.Amount `json:"staked"`
	} `json:"new_balance"`
	// PeerID is the node the stake backs: the ledger binds the wallet to it (a bind both the
	// wallet and the node's peer key sign), so the stake weighs its training reports.
	PeerID string `json:"peer_id,omitempty"`
}

// UnstakeRequest is POST /wallet/unstake.
type UnstakeRequest struct {
	Amount neuro.Amount `json:"amount"`
}

// UnstakeResult answers an unstake.
type UnstakeResult struct {
	Success       bool   `json:"success"`
	TransactionID string `json:"transaction_id"`
	Unstake       struct {
		Amount        neuro.Amount `json:"amount"`
		CooldownDays  int          `json:"cooldown_days"`
		AvailableDate string       `json:"available_date"`
	} `json:"unstake"`
}

// Proof is one proof of work this node's wallet was rewarded for.
type Proof struct {
	ID        string       `json:"id"`
	Type      string       `json:"type"`
	Layer     int          `json:"layer"`
	Units     int          `json:"units"`
	Consumer  string       `json:"consumer"`
	Timestamp string       `json:"timestamp"`
	Verified  bool         `json:"verified"`
	Reward    neuro.Amount `json:"reward"`
}

// ProofStats sums the node's proofs.
type ProofStats struct {
	TotalSubmitted int          `json:"total_submitted"`
	TotalVerified  int          `json:"total_verified"`
	TotalReward    neuro.Amount `json:"total_reward"`
}

// ProofList is GET /proofs.
type ProofList struct {
	Proofs []Proof    `json:"proofs"`
	Stats  ProofStats `json:"stats"`
	Limit  int        `json:"limit"`
	Offset int        `json:"offset"`
}
