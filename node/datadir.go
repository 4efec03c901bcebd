package node

// Files in the data dir (internal/datadir keeps the token).
const (
	identityFile = "identity.key"
	settingsFile = "settings.json"
	ledgerDir    = "ledger" // the badger database of the NEURO ledger
)
