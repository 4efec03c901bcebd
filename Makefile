# NeuroShard node. `make run` starts a standalone node; `make test` runs every test.
GO       ?= go
BIN      := bin/neuroshard
PKGS     := ./...
# Packages whose tests run concurrent code (hosts, servers, the node): run under the race detector.
RACE_PKGS := ./p2p/... ./coverage/... ./pipeline/... ./node/... ./nodeapi/... ./settings/... ./diloco/... ./httpapi/... ./client/... ./internal/... ./ledger/... ./tasks/...
# The packages of pure computation (layers) run without it, and so does the model-training test
# of diloco (its round logic runs under it). So do the end-to-end tests of cmd/...: they drive
# the built binary (not built with the detector) in processes of its own, so the detector
# would watch only their HTTP calls.
PLAIN_PKGS := ./layers/... ./cmd/...
RACE_SKIP := TestReplicasAgreeAfterEveryRound
# Long training tests through real hosts: the round's logic runs under the race detector in
# diloco's in-memory tests, and the node's concurrent glue in the node tests that stay, so
# these run without it (under it the model trains about 20x slower). So do the two swarms of
# 5 and 9 nodes whose logic (span choice, coverage) has race-tested tests of its own, and the
# six that generate most tokens through pipelines (exact answers across stages, failover,
# malformed and lying stages, full audits, a convicted stage's slashing: the pipeline's
# sessions and failover are race-tested in pipeline/, the slash attestations in
# ledger/ledgersync/).
SLOW_NODE_TESTS := TestPipelineInferenceMatchesOneNode|TestConvictedStageIsSlashed|TestFullAuditsLetNoWrongAnswerThrough|TestFailoverMidStreamGivesTheSameAnswer|TestMalformedStageOutputFailsOverWithoutPanic|TestFullAuditsConvictALyingWitness|TestPipelineTrainingAcrossNodes|TestLateJoinerAndKilledAggregatorTogether|TestRoundFailsWhenCaughtUpMeanwhile|TestPoisonedReplicaIsExcluded|TestReplicasRecomputeTheAggregate|TestCheckpointPutIsTakenOnlyWhenCorroborated|TestDiLoCoReplicasAgreeAndVerify|TestReplicaWithAnotherOuterStepIsRefused|TestShortRoundsStillAverageBothReplicas|TestCatchUpNeedsAQuorumOfHolders|TestSybilReportsMoveNoFigure|TestReportsCountOnlyFromRoundMembers|TestSoloRoundsAreNotSyncsAndVerifyNothing|TestTrainingSessionsOnlyFromDrivers|TestLyingStageIsConvictedByAuditAndExcluded|TestCheckpointsGoToHoldersOnlyAtARate|TestNodeBehindANATTrainsThroughARelay|TestEightNodesAndAFreshNodeSeesEveryLayer|TestJoiningNodeGoesWhereTheSwarmIsSlow|TestMoverTakesTheTrainedWeightsOfItsNewSpan|TestDownstreamReplicaJoiningLateIsDriven
FUZZTIME ?= 20s
# One set of build flags for every go command here (vet, tests, the binary the end-to-end tests
# and the Python client's tests run): packages compiled once serve them all. With -trimpath on
# the binary alone, a fresh machine compiled every dependency twice.
export GOFLAGS := $(strip $(GOFLAGS) -trimpath)
# The interpreter of the benchmarks' baselines (Debian's, where its numpy and torch install).
PYTHON   ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)

.PHONY: build run test test-plain-node test-plain test-plain-then-clients test-cross test-clients js-deps test-python test-js sim sim-small test-short bench bench-deps lint fuzz clean

build:
	$(GO) build -o $(BIN) ./cmd/neuroshard

run: build
	./$(BIN)

test: lint
	@$(MAKE) --no-print-directory js-deps > tests/js/.deps.log 2>&1 & # fetched while the Go tests run
	$(GO) test -race -count=1 -parallel 4 -timeout 15m -skip '$(SLOW_NODE_TESTS)|$(RACE_SKIP)' $(RACE_PKGS)
	$(MAKE) --no-print-directory -j2 test-plain-node test-plain-then-clients

# The tests that run without the race detector, in two lanes side by side (make -j2): the slow
# node tests, one package whose tests run one at a time (70 s), beside the other packages and
# then the clients (40 s + 12 s). (The clients' tests as a third lane slowed the node lane
# from 70 s to 110 s.)
test-plain-node:
	$(GO) test -count=1 -timeout 15m -run '$(SLOW_NODE_TESTS)' ./node/
test-plain:
	$(GO) test -count=1 -timeout 15m $(PLAIN_PKGS)
	$(GO) test -count=1 -timeout 15m -run '^($(RACE_SKIP))$$' ./diloco/
	# The whole model's pinned bits with the AVX2 product kernel and with no assembly at all
	# (the default run above used this machine's best kernels): peers on other CPUs agree.
	NEUROSHARD_KERNEL=avx2 $(GO) test -count=1 -run '^TestGoldenComputation$$' ./layers/
	$(GO) test -tags purego -count=1 -run '^TestGoldenComputation$$' ./layers/
	$(GO) test -tags purego -count=1 ./layers/cpu/
	# The same bits on another architecture: arm64 under qemu-user (its compiler fuses x*y+z
	# into FMAs where amd64's does not, and Go's math there is pure Go). More: make test-cross.
	@$(MAKE) --no-print-directory test-cross CROSS_ARCHS=arm64 CROSS_PKGS=layers
test-plain-then-clients: test-plain
	$(MAKE) --no-print-directory test-clients

# The pinned bits (the whole model: init, forward, KV-cache decode, loss, gradients, AdamW; a
# DiLoCo round; the ledger's and the wire's encodings) on other CPU architectures, each test
# binary cross-compiled and run under Debian's qemu-user: arm64 and riscv64 (compilers that
# fuse multiply-adds), ppc64le, s390x (big-endian, with math in its own assembly).
CROSS_ARCHS ?= arm64 s390x riscv64 ppc64le
CROSS_PKGS  ?= layers diloco ledger p2p
test-cross:
	@command -v qemu-aarch64 >/dev/null || { command -v apt-get >/dev/null && \
		{ apt-get update -qq && apt-get install -y -qq qemu-user; } >/dev/null 2>&1; } || true
	@for a in $(CROSS_ARCHS); do q=$$(echo $$a | sed s/arm64/aarch64/); command -v qemu-$$q >/dev/null || \
		{ echo "no qemu-$$q: apt-get install qemu-user (.ci/run does)"; exit 1; }; done
	@mkdir -p .cross
	@set -e; for a in $(CROSS_ARCHS); do q=$$(echo $$a | sed s/arm64/aarch64/); for p in $(CROSS_PKGS); do \
		GOARCH=$$a $(GO) test -c -o .cross/$$p-$$a.test ./$$p; \
		echo "$$a: $$p"; (cd $$p && qemu-$$q ../.cross/$$p-$$a.test -test.count=1 -test.run 'Golden'); \
	done; done

test-clients: test-python test-js

# The Python client's tests, against the built binary (a real node on 127.0.0.1).
test-python: build
	NEUROSHARD_BIN=$(CURDIR)/$(BIN) $(PYTHON) -m unittest discover -s clients/python/tests

# The node against JavaScript clients, with the built binary: the dashboard in a real headless
# browser (Debian's chromium driven by puppeteer-core) and the OpenAI API with the official
# openai package (both from npm, pinned by tests/js/package-lock.json).
CHROMIUM ?= $(shell command -v chromium || command -v chromium-browser || echo /usr/bin/chromium)
test-js: build
	@test -x "$(CHROMIUM)" || { echo "no chromium: apt-get install chromium (.ci/run does)"; exit 1; }
	@$(MAKE) --no-print-directory js-deps
	cd tests/js && NEUROSHARD_BIN=$(CURDIR)/$(BIN) CHROMIUM=$(CHROMIUM) node dashboard.test.mjs
	cd tests/js && NEUROSHARD_BIN=$(CURDIR)/$(BIN) node openai.test.mjs

# The JavaScript tests' packages: npm ci when the lock file changed since the last install,
# one install at a time (make test starts it in the background while the Go tests run).
js-deps:
	@cd tests/js && flock .npm.lock sh -c 'sum=$$(sha256sum package-lock.json); \
	if [ "$$(cat node_modules/.lock-sum 2>/dev/null)" != "$$sum" ]; then \
		npm ci --no-audit --no-fund --loglevel=error && echo "$$sum" > node_modules/.lock-sum; fi'

# The swarm simulation (internal/sim): the node's p2p parts on libp2p's in-memory network, at
# 100, 300 and 1,000 peers (sim: about 15 minutes and 14 GB of memory on two cores, the whole
# swarm in one process; SIM_PEERS=100,300 for 5 minutes and 5 GB) or 25, 50 and 100
# (sim-small, a few minutes), then DiLoCo rounds among 2 to 16 replicas of a span (2 to 8 in
# sim-small); results and plots in docs/sim.
SIM_OUT ?= docs/sim
SIM_PEERS ?= 100,300,1000
sim:
	$(GO) run ./cmd/neuroshard-sim --peers $(SIM_PEERS) --out $(SIM_OUT)

sim-small:
	$(GO) run ./cmd/neuroshard-sim --peers 25,50,100 --churn-time 20s --replicas 2,4,8 --rounds 3 --out $(SIM_OUT)

test-short:
	$(GO) test -short -count=1 $(PKGS)

# Benchmarks print each figure next to its baseline, measured in the same run. One package at a
# time (-p 1): packages benchmarked side by side would take each other's cores.
bench: bench-deps
	NEUROSHARD_PYTHON=$(PYTHON) $(GO) test -p 1 -run '^$$' -bench . -benchtime 1x -count=1 -timeout 60m $(PKGS)

# The baselines the benchmarks run beside the node's figures: numpy's OpenBLAS (GEMM) and
# PyTorch (the model), from Debian's packages when they are missing.
bench-deps:
	@{ $(PYTHON) -c 'import numpy, threadpoolctl, torch' && ls /usr/lib/x86_64-linux-gnu/libopenblas*.so* ; } >/dev/null 2>&1 || { command -v apt-get >/dev/null && \
		{ apt-get update -qq && apt-get install -y -qq python3-numpy python3-threadpoolctl python3-torch libopenblas0-pthread; } || \
		echo "no numpy: benchmarks print no baseline"; }

lint:
	@fmt=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$fmt" ]; then echo "not gofmt'ed:"; echo "$$fmt"; exit 1; fi
	$(GO) vet $(PKGS)

# Each fuzz target for FUZZTIME (go test -fuzz takes one target of one package at a time).
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg | grep ^Fuzz); do \
			echo "fuzz $$pkg $$t"; \
			$(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done; done

clean:
	rm -rf bin .cross
