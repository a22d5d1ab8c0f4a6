package mutate

import (
	"fmt"
	"strings"
	"testing"

	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
)

// TestAnnotationsSizeCountsTokenFileEnv: the status annotation records the
// token-file variables, and the annotation size check counts them: a pod
// whose annotations fit with that status is admitted, one byte more is
// refused, naming the bytes the webhook adds.
func TestAnnotationsSizeCountsTokenFileEnv(t *testing.T) {
	const filler = "example.com/large"
	annotated := func(fill int) map[string]string {
		return map[string]string{
			AnnotationAudience:       "vault,sts.amazonaws.com",
			AnnotationServiceAccount: "nginx",
			AnnotationTokenFileEnv:   "vault=VAULT_TOKEN_FILE,sts.amazonaws.com=AWS_WEB_IDENTITY_TOKEN_FILE",
			filler:                   strings.Repeat("x", fill),
		}
	}
	pod := readPod(t, "testdata/classic/in.yaml")
	pod.Annotations = annotated(0)
	res, err := Mutate(pod, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	status := res.Changes.Status
	if !strings.Contains(status, `"tokenFileEnv":{"AWS_WEB_IDENTITY_TOKEN_FILE":"sts.amazonaws.com","VAULT_TOKEN_FILE":"vault"}`) {
		t.Fatalf("status does not record the variables: %s", status)
	}
	used := len(AnnotationStatus) + len(status)
	for k, v := range pod.Annotations {
		used += len(k) + len(v)
	}
	room := apimachineryvalidation.TotalAnnotationSizeLimitB - used

	pod.Annotations = annotated(room)
	if _, err := Mutate(pod, DefaultConfig()); err != nil {
		t.Fatalf("annotations that fit with the status were refused: %v", err)
	}
	pod.Annotations = annotated(room + 1)
	_, err = Mutate(pod, DefaultConfig())
	want := fmt.Sprintf("including the %d bytes of %s this webhook adds", len(AnnotationStatus)+len(status), AnnotationStatus)
	if err == nil || !IsInvalid(err) || !strings.Contains(err.Error(), want) {
		t.Fatalf("annotations one byte over the limit with the status: got %v, want a denial %q", err, want)
	}
}
