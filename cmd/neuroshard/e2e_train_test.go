package main

import (
	"context"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/client"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// Two processes holding the tiny model train together with DiLoCo; the second, started
// after the first, shares its rounds once it has caught up, and after two rounds
// /api/training/global says training is verified.
func TestEndToEndTrainingTwoProcesses(t *testing.T) {
	ctx := context.Background()
	args := []string{"--model", "neuroshard-tiny", "--train=true", "--token", "tok"}
	a := startNode(t, t.TempDir(), freeAPIPort(t), args...)
	st, err := client.New(a.api, "tok").Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := startNode(t, t.TempDir(), freeAPIPort(t), append(args, "--bootstrap", st.Multiaddrs[0])...)
	lr, bs, h := 3e-3, 4, 5
	for _, p := range []*proc{a, b} {
		if _, err := client.New(p.api, "tok").PatchConfig(ctx, apitypes.ConfigPatch{Training: &apitypes.TrainingPatch{
			LearningRate: &lr, BatchSize: &bs, DiLoCoSteps: &h}}); err != nil {
			t.Fatal(err)
		}
	}
	var g apitypes.TrainingGlobal
	deadline := time.Now().Add(3 * time.Minute)
	for {
		g, err = client.New(b.api, "tok").TrainingGlobal(ctx)
		if err == nil && g.TrainingVerified && g.Local.TrainingRounds >= 2 && g.TotalNodesTraining == 2 && g.LossTrend == "improving" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("training never verified: %+v %v", g, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("verified after %d rounds: %+v", g.Local.TrainingRounds, g)
	// The replica started second shares its rounds once it has caught up: at most the round
	// it may take before its coverage view finds the first (about 2 s in) is solo.
	if g.HashAgreementRate != 1 || g.LossTrend != "improving" || g.SoloRounds > 1 || g.SuccessfulSyncs < 2 {
		t.Fatalf("training global: %+v", g)
	}
	// The other node verifies too, once the gossip has brought it the same reports.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
		v, err := client.New(a.api, "tok").TrainingVerify(ctx)
		if err == nil && v.IsWorking {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("verify on the other node: %+v %v", v, err)
		}
	}
}
