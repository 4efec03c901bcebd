package apitypes

import (
	"time"

	"github.com/neuroshard/neuroshard/ledger/neuro"
)

// Status is GET /api/v1/status.
type Status struct {
	NodeID        string          `json:"node_id"`
	Version       string          `json:"version"`
	UptimeSeconds int64           `json:"uptime_seconds"`
	Status        string          `json:"status"`
	Role          string          `json:"role"`
	Layers        []int           `json:"layers"`
	PeerCount     int             `json:"peer_count"`
	Training      *TrainingStatus `json:"training"`
	Resources     Resources       `json:"resources"`
	// Beyond the seed: what scripts need to reach and bootstrap from this node.
	Multiaddrs []string `json:"multiaddrs"`
	Model      string   `json:"model"`
	ModelHash  string   `json:"model_hash,omitempty"` // sha256 of the weights served: theta_0 of the last DiLoCo round
	APIPort    int      `json:"api_port"`
	P2PPort    int      `json:"p2p_port"`
	// Reachability is what AutoNAT (or --reachability) says of this node: public, private or
	// unknown; a private node is reached through the relays of RelayAddrs.
	Reachability string   `json:"reachability"`
	RelayAddrs   []string `json:"relay_addrs"`
	RelayService bool     `json:"relay_service"` // this node relays for others (--relay)
	// Benchmark is this machine's measured throughput on the node's preset and backend (the
	// short run of its first start); null until measured or when measuring is off.
	Benchmark *Benchmark `json:"benchmark"`
	// Rebalance is the balance rule's advice (coverage.Rebalance): the span that would raise
	// the swarm's decode throughput (its slowest layer's) by 20% or more if this node held it
	// instead; null when none would. The node does not move by itself yet: restarting it with
	// --layers set to the span, or without --layers, takes the advice.
	Rebalance *RebalanceAdvice `json:"rebalance"`
}

// RebalanceAdvice is a span move the balance rule advises.
type RebalanceAdvice struct {
	From            string  `json:"from"`
	To              string  `json:"to"`
	TokensPerSNow   float64 `json:"tokens_per_s_now"`
	TokensPerSAfter float64 `json:"tokens_per_s_after"`
}

// Benchmark is a node's throughput in tokens per second (`neuroshard bench` measures the same
// workloads at full length).
type Benchmark struct {
	Preset       string    `json:"preset"`
	Backend      string    `json:"backend"`
	Threads      int       `json:"threads"`
	Forward      float64   `json:"forward_tokens_per_s"`
	Train        float64   `json:"train_tokens_per_s"`
	Decode       float64   `json:"decode_tokens_per_s"`
	DecodeBatch8 float64   `json:"decode_batch8_tokens_per_s"`
	Prefill      float64   `json:"prefill_tokens_per_s"`
	Short        bool      `json:"short,omitempty"`
	MeasuredAt   time.Time `json:"measured_at"`
}

// TrainingStatus is the training section of Status.
type TrainingStatus struct {
	Enabled bool    `json:"enabled"`
	Epoch   int64   `json:"epoch"`
	Step    int64   `json:"step"`
	Loss    float64 `json:"loss"`
	// Beyond the seed: the pseudo-gradient compression and the bytes of pseudo-gradients this
	// node has sent to other replicas.
	Compression       string `json:"compression"`
	ExchangeBytesSent int64  `json:"exchange_bytes_sent"`
}

// Resources is the resources section of Status. GPU fields are zero: the node runs on CPU.
type Resources struct {
	GPUMemoryUsed  int64   `json:"gpu_memory_used"`
	GPUMemoryTotal int64   `json:"gpu_memory_total"`
	CPUPercent     float64 `json:"cpu_percent"`
	RAMUsed        int64   `json:"ram_used"`
}

// Health is GET /api/v1/health.
type Health struct {
	Healthy bool              `json:"healthy"`
	Checks  map[string]string `json:"checks"`
}

// Peer is one entry of GET /api/v1/peers.
type Peer struct {
	ID             string  `json:"id"`
	Address        string  `json:"address"`
	Role           string  `json:"role,omitempty"`
	Layers         []int   `json:"layers"`
	LatencyMS      float64 `json:"latency_ms"`
	ConnectedSince string  `json:"connected_since"`
	AgentVersion   string  `json:"agent_version,omitempty"`
	// Beyond the seed: why this node keeps the peer out of its routes (an audit convicted it).
	Excluded string `json:"excluded,omitempty"`
	// AuditsPassed is how many of this node's audits of the peer's answers it passed.
	AuditsPassed int `json:"audits_passed,omitempty"`
	// Stake is the NEURO staked by the account the ledger binds to the peer: what weighs its
	// training reports, and what a fraud proof against it burns half of.
	Stake neuro.Amount `json:"stake,omitempty"`
}

// PeerList is GET /api/v1/peers.
type PeerList struct {
	Peers []Peer `json:"peers"`
	Total int    `json:"total"`
}

// Layer is one entry of GET /api/v1/layers.
type Layer struct {
	Index    int    `json:"index"`
	Type     string `json:"type"`
	MemoryMB int64  `json:"memory_mb"`
	Status   string `json:"status"`
}

// LayerList is GET /api/v1/layers.
type LayerList struct {
	Layers       []Layer `json:"layers"`
	TotalLayers  int     `json:"total_layers"`
	MyLayerCount int     `json:"my_layer_count"`
}

// Network is GET /api/v1/network.
type Network struct {
	Nodes        NodeCounts       `json:"nodes"`
	Architecture Architecture     `json:"architecture"`
	Capacity     Capacity         `json:"capacity"`
	Training     *NetworkTraining `json:"training"` // null while no replica reports training
	Coverage     Coverage         `json:"coverage"`
	Ledger       NetworkLedger    `json:"ledger"`
}

// NetworkLedger is the NEURO ledger as this node holds it.
type NetworkLedger struct {
	NetworkID     string       `json:"network_id"`   // hash of the ledger rules every node of the network runs
	Transactions  uint64       `json:"transactions"` // applied to this node's ledger
	Minted        neuro.Amount `json:"minted"`       // genesis plus rewards
	Burned        neuro.Amount `json:"burned"`       // fees
	Circulating   neuro.Amount `json:"circulating"`  // minted - burned: what all accounts hold together
	Equivocations int          `json:"equivocations"`
	PricePerToken neuro.Amount `json:"price_per_token"`
}

// NetworkTraining is the training section of Network, from the gossiped reports.
type NetworkTraining struct {
	Epoch      int64   `json:"epoch"`       // the newest DiLoCo round any replica completed
	GlobalStep int64   `json:"global_step"` // inner steps, summed over the replicas reporting
	Loss       float64 `json:"loss"`        // mean of the reported losses
}

// Capacity is the network's capacity as the holders' peer records state it (the nodes
// without a record, older builds, are not counted: nodes_recorded says how many are).
type Capacity struct {
	TotalMemoryGB float64 `json:"total_memory_gb"` // the holders' memory budgets
	UsedMemoryGB  float64 `json:"used_memory_gb"`  // what their spans' weights take
	// DecodeTokensPerS is how many tokens per second the holders can decode through the whole
	// model, one sequence each: the slowest layer's holders together (0 while a layer has no
	// measured holder). DecodeBatch8TokensPerS is the same at batch 8.
	DecodeTokensPerS       float64   `json:"decode_tokens_per_s"`
	DecodeBatch8TokensPerS float64   `json:"decode_batch8_tokens_per_s"`
	LayerTokensPerS        []float64 `json:"layer_tokens_per_s"` // each layer's figure at batch 1
	NodesRecorded          int       `json:"nodes_recorded"`
	NodesMeasured          int       `json:"nodes_measured"` // of those, with a measured throughput
}

// NodeCounts counts the nodes the DHT knows by role.
type NodeCounts struct {
	Total      int `json:"total"`
	Drivers    int `json:"drivers"`
	Workers    int `json:"workers"`
	Validators int `json:"validators"`
}

// Architecture describes the model the network serves.
type Architecture struct {
	Model      string `json:"model"`
	Layers     int    `json:"layers"`
	HiddenDim  int    `json:"hidden_dim"`
	Heads      int    `json:"heads"`
	Vocab      int    `json:"vocab"`
	Context    int    `json:"context"`
	Parameters string `json:"parameters"`
}

// NodeConfig is GET /api/v1/config.
type NodeConfig struct {
	NodeID   string `json:"node_id"`
	Port     int    `json:"port"`
	GRPCPort int    `json:"grpc_port"`
	// TrackerURL is null: peers find each other through the DHT (Bootstrap), no tracker.
	TrackerURL *string         `json:"tracker_url"`
	Bootstrap  []string        `json:"bootstrap"`
	Training   TrainingConfig  `json:"training"`
	Resources  ResourcesConfig `json:"resources"`
}

// TrainingConfig is the training section of NodeConfig.
type TrainingConfig struct {
	Enabled      bool    `json:"enabled"`
	BatchSize    int     `json:"batch_size"`
	LearningRate float64 `json:"learning_rate"`
	DiLoCoSteps  int     `json:"diloco_steps"`
	Compression  string  `json:"compression"`
	// Beyond the seed: DiLoCo's outer Nesterov step, the same on every replica of a span.
	OuterLR       float64 `json:"outer_lr"`
	OuterMomentum float64 `json:"outer_momentum"`
}

// ResourcesConfig is the resources section of NodeConfig.
type ResourcesConfig struct {
	MaxMemoryGB float64 `json:"max_memory_gb"`
	CPUThreads  int     `json:"cpu_threads"`
}

// ConfigPatch is the body of PATCH /api/v1/config: every field optional.
type ConfigPatch struct {
	Training  *TrainingPatch  `json:"training,omitempty"`
	Resources *ResourcesPatch `json:"resources,omitempty"`
}

// TrainingPatch holds the training fields PATCH /config may change.
type TrainingPatch struct {
	Enabled       *bool    `json:"enabled,omitempty"`
	BatchSize     *int     `json:"batch_size,omitempty"`
	LearningRate  *float64 `json:"learning_rate,omitempty"`
	DiLoCoSteps   *int     `json:"diloco_steps,omitempty"`
	Compression   *string  `json:"compression,omitempty"` // none, fp16 or int8
	OuterLR       *float64 `json:"outer_lr,omitempty"`
	OuterMomentum *float64 `json:"outer_momentum,omitempty"`
}

// ResourcesPatch holds the resource fields PATCH /config may change.
type ResourcesPatch struct {
	MaxMemoryGB *float64 `json:"max_memory_gb,omitempty"`
	CPUThreads  *int     `json:"cpu_threads,omitempty"`
}

// ConfigPatchResult is the answer to PATCH /api/v1/config.
type ConfigPatchResult struct {
	Success         bool     `json:"success"`
	Updated         []string `json:"updated"`
	RestartRequired bool     `json:"restart_required"`
}

// DHTPeer is one routing-table entry.
type DHTPeer struct {
	ID        string  `json:"id"`
	Connected bool    `json:"connected"`
	LatencyMS float64 `json:"latency_ms"`
}

// RoutingTable is GET /api/v1/dht/routing-table.
type RoutingTable struct {
	Peers []DHTPeer `json:"peers"`
	Size  int       `json:"size"`
}

// Provider is one holder of a layer.
type Provider struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
	Self  bool     `json:"self,omitempty"`
}

// Providers is GET /api/v1/dht/providers/:layer.
type Providers struct {
	Layer     int        `json:"layer"`
	Key       string     `json:"key"`
	Providers []Provider `json:"providers"`
}

// PeerAddrs is GET /api/v1/dht/peers/:id.
type PeerAddrs struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
}

// LayerCoverage tells who holds one layer.
type LayerCoverage struct {
	Index     int      `json:"index"`
	Providers []string `json:"providers"`
	Replicas  int      `json:"replicas"`
}

// Coverage is GET /api/v1/dht/coverage: for each layer, who holds it.
type Coverage struct {
	Model    string          `json:"model"`
	Layers   []LayerCoverage `json:"layers"`
	Complete bool            `json:"complete"`
	Missing  []int           `json:"missing"`
}

// InferenceRequest is the body of POST /api/v1/inference; absent fields take seed 001's
// defaults.
type InferenceRequest struct {
	Prompt      *string  `json:"prompt"`
	MaxTokens   *int     `json:"max_tokens,omitempty"`
	Temperature *float64 `json:"temperature,omitempty"`
	TopP        *float64 `json:"top_p,omitempty"`
	TopK        *int     `json:"top_k,omitempty"`
	Stream      bool     `json:"stream,omitempty"`
	Stop        []string `json:"stop,omitempty"`
	Seed        *uint64  `json:"seed,omitempty"`
}

// Usage counts tokens.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// Cost is what a request cost.
type Cost struct {
	Amount   neuro.Amount `json:"amount"` // paid to the serving peers, fees included
	Currency string       `json:"currency"`
	// Beyond the seed: the payment transactions, one per remote stage.
	Transactions []string `json:"transactions,omitempty"`
}

// Timing splits a request's time.
type Timing struct {
	QueueMS     int64 `json:"queue_ms"`
	InferenceMS int64 `json:"inference_ms"`
	TotalMS     int64 `json:"total_ms"`
}

// InferenceResponse is the answer to a non-streaming inference request.
type InferenceResponse struct {
	ID              string `json:"id"`
	Text            string `json:"text"`
	TokensGenerated int    `json:"tokens_generated"`
	FinishReason    string `json:"finish_reason"`
	Usage           Usage  `json:"usage"`
	Cost            Cost   `json:"cost"`
	Timing          Timing `json:"timing"`
	// Beyond the seed: the peers that ran the layers, in order.
	Route []RouteHop `json:"route,omitempty"`
}

// RouteHop is one stage of the route a request took.
type RouteHop struct {
	Peer   string `json:"peer"`
	Layers string `json:"layers"`
}

// TokenEvent is one Server-Sent Event of a streaming inference; the last has Token "[DONE]",
// the finish reason and the usage.
type TokenEvent struct {
	Token        string `json:"token"`
	Index        int    `json:"index"`
	FinishReason string `json:"finish_reason,omitempty"`
	Usage        *Usage `json:"usage,omitempty"`
}

// Metrics is GET /api/v1/metrics.
type Metrics struct {
	Timestamp string           `json:"timestamp"`
	Inference InferenceMetrics `json:"inference"`
	Training  TrainingMetrics  `json:"training"`
	Network   NetworkMetrics   `json:"network"`
	Rewards   RewardMetrics    `json:"rewards"`
}

// TrainingMetrics is the training section of Metrics: this node's inner steps (their rate
// since it started) and its pseudo-gradients, one per DiLoCo round it took part in, accepted
// when the round was applied with it.
type TrainingMetrics struct {
	StepsTotal         int64   `json:"steps_total"`
	StepsPerHour       float64 `json:"steps_per_hour"`
	GradientsSubmitted int64   `json:"gradients_submitted"`
	GradientsAccepted  int64   `json:"gradients_accepted"`
}

// RewardMetrics is the rewards section of Metrics: NEURO minted to this node's wallet by
// rewards since midnight UTC and in all; pending is 0 (a proof is rewarded when its
// transaction applies: nothing waits).
type RewardMetrics struct {
	EarnedToday neuro.Amount `json:"earned_today"`
	EarnedTotal neuro.Amount `json:"earned_total"`
	Pending     neuro.Amount `json:"pending"`
}

// InferenceMetrics is the inference section of Metrics.
type InferenceMetrics struct {
	RequestsTotal     int64   `json:"requests_total"`
	RequestsPerMinute float64 `json:"requests_per_minute"`
	AvgLatencyMS      float64 `json:"avg_latency_ms"`
	P99LatencyMS      float64 `json:"p99_latency_ms"`
	TokensGenerated   int64   `json:"tokens_generated"`
	Failovers         int64   `json:"failovers"`
	QueueLength       int     `json:"queue_length"`
	// Beyond the seed: audits of remote stages' answers, by verdict (passed, convicted, ...).
	Audits map[string]int64 `json:"audits"`
}

// NetworkMetrics is the network section of Metrics.
type NetworkMetrics struct {
	BytesSent         int64 `json:"bytes_sent"`
	BytesReceived     int64 `json:"bytes_received"`
	ActiveConnections int   `json:"active_connections"`
	RPCCalls          int64 `json:"rpc_calls"`
}

// TrainingGlobal is GET /api/training/global: is distributed training working?
type TrainingGlobal struct {
	GlobalAvgLoss      float64 `json:"global_avg_loss"`
	GlobalMinLoss      float64 `json:"global_min_loss"`
	HashAgreementRate  float64 `json:"hash_agreement_rate"`
	TotalNodesTraining int     `json:"total_nodes_training"`
	SuccessfulSyncs    int64   `json:"successful_syncs"` // rounds averaged with another replica
	FailedSyncs        int64   `json:"failed_syncs"`
	// Beyond the seed: rounds this node took alone (no other replica's contribution), and the
	// largest number of replicas agreeing on a span's newest round.
	SoloRounds        int64         `json:"solo_rounds"`
	AgreeingReplicas  int           `json:"agreeing_replicas"`
	SyncSuccessRate   float64       `json:"sync_success_rate"`
	GlobalSteps       int64         `json:"global_steps"`
	GlobalTokens      int64         `json:"global_tokens"`
	DataShardsCovered []int         `json:"data_shards_covered"`
	IsConverging      bool          `json:"is_converging"`
	TrainingVerified  bool          `json:"training_verified"`
	LossTrend         string        `json:"loss_trend"`
	Local             TrainingLocal `json:"local"`
	DiLoCo            DiLoCoStatus  `json:"diloco"`
}

// TrainingRounds is GET /api/v1/training/rounds: the DiLoCo rounds this node's replica
// completed, oldest first (the dashboard's loss and agreement charts).
type TrainingRounds struct {
	Model  string       `json:"model"`
	First  int          `json:"first_layer"`
	Last   int          `json:"last_layer"`
	Rounds []RoundPoint `json:"rounds"`
}

// RoundPoint is one completed round; the training.round event carries the same object.
type RoundPoint struct {
	Round    int64   `json:"round"`
	Time     string  `json:"time"`
	Loss     float64 `json:"loss"` // this node's recent training loss when the round ended
	Hash     string  `json:"hash"` // of the weights (theta_0) the round ended with
	Replicas int     `json:"replicas"`
	Excluded int     `json:"excluded"`
	Solo     bool    `json:"solo"` // no other replica's contribution was used
	// Of the span's members that reported the round's result, how many named the same weights
	// (counted as their reports arrive; 0 members until one does).
	Members   int     `json:"members"`
	Agreeing  int     `json:"agreeing"`
	Agreement float64 `json:"agreement"`
}

// TrainingLocal is this node's part of TrainingGlobal.
type TrainingLocal struct {
	NodeID         string  `json:"node_id"`
	TrainingRounds int64   `json:"training_rounds"`
	CurrentLoss    float64 `json:"current_loss"`
	IsTraining     bool    `json:"is_training"`
	ModelHash      string  `json:"model_hash"`
}

// DiLoCoStatus is the diloco section of TrainingGlobal.
type DiLoCoStatus struct {
	Enabled         bool    `json:"enabled"`
	InnerStepCount  int64   `json:"inner_step_count"`
	InnerStepsTotal int     `json:"inner_steps_total"`
	Progress        float64 `json:"progress"`
	OuterStepCount  int64   `json:"outer_step_count"`
	// Beyond the seed: the outer step, and the replicas recently left out of this node's rounds
	// with the reason (an outlier norm, NaN, a bad signature, another outer step, behind),
	// newest first.
	OuterLR          float64     `json:"outer_lr"`
	OuterMomentum    float64     `json:"outer_momentum"`
	RecentExclusions []Exclusion `json:"recent_exclusions,omitempty"`
	// LastRoundError is why this node's latest round failed, while none has succeeded since
	// (refused by the aggregator for another learning rate or outer step, say).
	LastRoundError string `json:"last_round_error,omitempty"`
}

// Exclusion is a replica left out of a DiLoCo round, and why.
type Exclusion struct {
	Round  int64  `json:"round"`
	Peer   string `json:"peer"`
	Reason string `json:"reason"`
}

// TrainingVerify is GET /api/training/verify.
type TrainingVerify struct {
	IsWorking bool           `json:"is_working"`
	Reason    string         `json:"reason"`
	Metrics   map[string]any `json:"metrics,omitempty"`
	Action    string         `json:"action,omitempty"`
}
