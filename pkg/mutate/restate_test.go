package mutate

import (
	"encoding/json"
	"testing"
)

// TestRestateRecordsWhatWasEnsured: the status annotation says what the
// Ensurer really did for the account (the reconciler restores identities
// from it), and a pod already carrying that status is left unchanged.
func TestRestateRecordsWhatWasEnsured(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   Identity
	}{
		{"an account the webhook created", Identity{RBAC: true, ManagedAccount: true}},
		{"an existing account its owner labelled", Identity{RBAC: true}},
		{"an existing account nobody labelled", Identity{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := readPod(t, "testdata/classic/in.yaml")
			res, err := Mutate(pod, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			res.Restate(pod, tc.id)
			var st Status
			if err := json.Unmarshal([]byte(res.Changes.Status), &st); err != nil {
				t.Fatalf("status %q: %v", res.Changes.Status, err)
			}
			if st.RBAC != tc.id.RBAC || st.ManagedServiceAccount != tc.id.ManagedAccount || st.ServiceAccount != res.Spec.ServiceAccount {
				t.Errorf("status %q does not record %+v for %s", res.Changes.Status, tc.id, res.Spec.ServiceAccount)
			}

			res.Changes.Apply(pod)
			again, err := Mutate(pod, DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			again.Restate(pod, tc.id)
			if !again.Changes.Empty() {
				t.Errorf("second pass with the same identity wants changes: %+v", again.Changes)
			}
		})
	}
}
