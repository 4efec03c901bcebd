package settings

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

func TestPatchIsValidatedWholeStoredAndReloaded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "settings.json")
	st, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Get() != DefaultSettings() {
		t.Fatalf("fresh settings %+v, want the defaults", st.Get())
	}
	bs, bad := 32, 0
	lr := 0.5
	// One bad field fails the whole patch: nothing changes, nothing is written.
	if _, err := st.Apply(apitypes.ConfigPatch{Training: &apitypes.TrainingPatch{BatchSize: &bs, LearningRate: &lr, DiLoCoSteps: &bad}}); err == nil {
		t.Fatal("a patch with diloco_steps 0 was taken")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) || st.Get() != DefaultSettings() {
		t.Fatalf("a refused patch changed something: %v %+v", err, st.Get())
	}
	if _, err := st.Apply(apitypes.ConfigPatch{}); err == nil {
		t.Fatal("an empty patch was taken")
	}
	threads := 3
	res, err := st.Apply(apitypes.ConfigPatch{Training: &apitypes.TrainingPatch{BatchSize: &bs}, Resources: &apitypes.ResourcesPatch{CPUThreads: &threads}})
	if err != nil || !res.Success || !res.RestartRequired || len(res.Updated) != 2 {
		t.Fatalf("patch: %+v %v", res, err)
	}
	again, err := Load(path)
	if err != nil || again.Get().Training.BatchSize != 32 || again.Get().Resources.CPUThreads != 3 {
		t.Fatalf("reloaded %+v %v", again.Get(), err)
	}
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil {
		t.Fatal("corrupt settings were loaded")
	}
}
