// Package tokenpolicy holds the token policy's CEL (config/tokenpolicy) to
// the webhook's own rules, without a control plane: its glob translation to
// path.Match, which the webhook matches audiences with, and its reading of
// token-projector.io/max-expiration to pkg/mutate's. The policy's behaviour
// in kube-apiserver is tested in test/integration.
package tokenpolicy

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types/ref"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/util/version"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/apiserver/pkg/cel/library"

	"github.com/token-projector/token-projector/pkg/mutate"
	"github.com/token-projector/token-projector/test/testenv"
)

// policyVariables evaluates the policy's variables named, each on its own,
// given the variables they read.
type policyVariables struct {
	t     *testing.T
	progs map[string]cel.Program
}

// oldestCompatibility is the CEL environment the oldest tested
// kube-apiserver (v1.33) checks new expressions against: its
// compatibility version, one minor below.
var oldestCompatibility = version.MajorMinor(1, 32)

func loadPolicy(t *testing.T, names ...string) *policyVariables {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := testenv.ReadObjects(filepath.Join(root, "config/tokenpolicy/policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var policy *admissionregistrationv1.ValidatingAdmissionPolicy
	for _, o := range objs {
		if p, ok := o.(*admissionregistrationv1.ValidatingAdmissionPolicy); ok {
			policy = p
		}
	}
	if policy == nil {
		t.Fatal("config/tokenpolicy/policy.yaml has no ValidatingAdmissionPolicy")
	}
	env, err := environment.MustBaseEnvSet(oldestCompatibility).NewExpressionsEnv().Extend(
		cel.Variable("variables", cel.MapType(cel.StringType, cel.DynType)))
	if err != nil {
		t.Fatal(err)
	}
	v := &policyVariables{t: t, progs: map[string]cel.Program{}}
	for _, name := range names {
		var expr string
		for _, pv := range policy.Spec.Variables {
			if pv.Name == name {
				expr = pv.Expression
			}
		}
		if expr == "" {
			t.Fatalf("the policy has no variable %s", name)
		}
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			t.Fatalf("variable %s: %v", name, iss.Err())
		}
		// As kube-apiserver runs them: its cost model, its per-call limit.
		prog, err := env.Program(ast, cel.CostTracking(&library.CostEstimator{}), cel.CostLimit(celconfig.PerCallLimit))
		if err != nil {
			t.Fatalf("variable %s: %v", name, err)
		}
		v.progs[name] = prog
	}
	return v
}

func (v *policyVariables) eval(name string, vars map[string]any) (any, error) {
	out, _, err := v.evalCost(name, vars)
	return out, err
}

// evalCost evaluates the variable name and says what it cost, in
// kube-apiserver's units.
func (v *policyVariables) evalCost(name string, vars map[string]any) (any, uint64, error) {
	out, det, err := v.progs[name].Eval(map[string]any{"variables": vars})
	var cost uint64
	if det != nil && det.ActualCost() != nil {
		cost = *det.ActualCost()
	}
	if err != nil {
		return nil, cost, err
	}
	return out.Value(), cost, nil
}

// globCases are the webhook's own: the globs and audiences of pkg/mutate's
// tests and of audienceAllowed's comment, then classes, escapes and '/'.
var globCases = struct{ globs, audiences []string }{
	globs: []string{
		"vault", "*.example.com", "sts.*", "*", "https://sts.example.com/*", "[a-", "[",
		"a?c", "?", "**", "*/*", "[a-c]x", "[^a-c]x", "[/]", "[^a]", "[\\]]", "[\\-a]", "[a\\-z]", "[z-a]",
		"[z-a0]", "[^z-a]", "[^^]", "[^-a]", "[]a]", "[a-]", "[a-b-c]", "\\*", "\\", "a\\", "\\?x", "\\[x]",
		"[[]", "[*?]", "]", "^$.+(){}|", "é*", "[é-ë]", "[^é]", "a[", "a[b", "[a]]", "https://x/?q=[1]",
		"https://x/\\?q=\\[1\\]", "[\\", "[a-\\]", "[\\a-\\c]", "a*b*c", "*b", "a*", "\\\\",
	},
	audiences: []string{
		"", "vault", "sts.example.com", "a.b.example.com", "https://sts.example.com/aws",
		"https://sts.example.com/aws/prod", "evil.example.org", "https://evil.example.org/.example.com",
		"abc", "a/c", "x", "/", "ax", "dx", "/x", "]x", "-", "]", "^", "a", "z", "0", "[x]", "[x", "*", "?x", "\\",
		"é", "éa", "ê", "^$.+(){}|", "https://x/?q=[1]", "https://x/?q=1", "aXbYc", "a/b/c", "ab", "b", "-a",
	},
}

// TestGlobsMatchPathMatch: for every glob, the policy's well-formedness is
// path.Match's (the webhook denies pods of a namespace whose glob is
// malformed), and its regular expression matches exactly the audiences
// path.Match does: on the webhook's cases, then on 3 000 generated globs
// against 40 generated audiences each.
func TestGlobsMatchPathMatch(t *testing.T) {
	v := loadPolicy(t, "audienceGlobsWellFormed", "audienceRegexes")
	check := func(glob string, audiences []string) {
		_, badPattern := path.Match(glob, "")
		got, err := v.eval("audienceGlobsWellFormed", map[string]any{"audienceGlobs": []string{glob}})
		if err != nil {
			t.Fatalf("glob %q: audienceGlobsWellFormed: %v", glob, err)
		}
		if got != (badPattern == nil) {
			t.Errorf("glob %q: well-formed = %v, path.Match's error = %v", glob, got, badPattern)
			return
		}
		if badPattern != nil {
			return
		}
		out, err := v.eval("audienceRegexes", map[string]any{"audienceGlobs": []string{glob}})
		if err != nil {
			t.Fatalf("glob %q: audienceRegexes: %v", glob, err)
		}
		res, ok := out.([]ref.Val)
		if !ok || len(res) != 1 {
			t.Fatalf("glob %q: audienceRegexes = %v, want one regular expression", glob, out)
		}
		re, err := regexp.Compile(res[0].Value().(string)) //nolint:forcetypeassert // the CEL list holds strings
		if err != nil {
			t.Fatalf("glob %q: regular expression %q: %v", glob, res[0], err)
		}
		for _, aud := range audiences {
			want, _ := path.Match(glob, aud)
			if got := re.MatchString(aud); got != want {
				t.Errorf("glob %q (regexp %q) on %q: %v, path.Match %v", glob, re, aud, got, want)
			}
		}
	}
	for _, g := range globCases.globs {
		check(g, globCases.audiences)
	}
	rng := rand.New(rand.NewPCG(21, 2))
	globAlphabet := []string{"a", "b", "/", "*", "?", "[", "]", "^", "-", "\\", ".", "é", "z"}
	nameAlphabet := []string{"a", "b", "/", ".", "-", "^", "]", "[", "\\", "*", "?", "é", "z", "c"}
	gen := func(alphabet []string, n int) string {
		var b strings.Builder
		for range rng.IntN(n + 1) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return b.String()
	}
	for range 3000 {
		glob := gen(globAlphabet, 8)
		audiences := make([]string, 40)
		for i := range audiences {
			audiences[i] = gen(nameAlphabet, 6)
		}
		check(glob, audiences)
	}
}

// TestMaxExpirationAsTheWebhookReadsIt: the policy's maximum, in seconds,
// is the one pkg/mutate reads from token-projector.io/max-expiration, and
// where the webhook finds it malformed (not whole seconds, below 10m,
// neither seconds nor a Go duration), so does the policy (maxWellFormed
// false: it refuses every TokenRequest but the API server's). A Go duration too large for
// Go is an evaluation error: the policy's failurePolicy (Fail) refuses.
func TestMaxExpirationAsTheWebhookReadsIt(t *testing.T) {
	v := loadPolicy(t, "maxSeconds", "maxWellFormed")
	flags := mutate.Config{DefaultExpiration: mutate.MinExpiration, MaxExpiration: math.MaxInt64}
	for _, raw := range []string{
		"1800", "30m", "1h", "2h30m", " 3600 ", "5m", "599", "600", "1d", "30m0.5s", "30m0.0005s", "-1h", "+1h",
		"0", "00000000000600", "9223372036", "9223372037", "99999999999999999999", "1.5h", ".5h", "5.h", ".h",
		"1h1h", "", "abc", "1µs", "1μs", "1us", "3600000000000ns", "36e2s", "1h ", "1 h", "600s", "10m0s", "0x258",
	} {
		cfg, _, nsErr := flags.ForNamespace("shop", map[string]string{mutate.AnnotationMaxExpiration: raw})
		var want int64
		if nsErr == nil {
			want = int64(cfg.MaxExpiration / time.Second)
		}
		got, err := v.eval("maxSeconds", map[string]any{"maxRaw": strings.TrimSpace(raw)})
		if err != nil {
			t.Errorf("%q: %v", raw, err)
			continue
		}
		wellFormed, err := v.eval("maxWellFormed", map[string]any{"maxSeconds": got})
		if err != nil {
			t.Fatalf("%q: maxWellFormed: %v", raw, err)
		}
		if wellFormed != (nsErr == nil) || nsErr == nil && got != want {
			t.Errorf("%q: policy reads %v seconds (well-formed %v), the webhook %d (%v)", raw, got, wellFormed, want, nsErr)
		}
	}
	if _, err := v.eval("maxSeconds", map[string]any{"maxRaw": "9999999999h"}); err == nil {
		t.Error("9999999999h overflows Go's duration: want an evaluation error (the policy then fails closed)")
	}
}

// TestCostWithinLimits: a policy larger than any plausible one (40 globs of
// 60 characters with classes and escapes, a TokenRequest for 20 audiences of
// 100 characters) stays within kube-apiserver's per-call cost limit with
// room to spare (each variable under half of it; costs are logged: the
// match of every audience against every glob dominates, about a fifth of
// the limit here), and all of it within a tenth of the per-policy budget.
// Only far larger annotations or requests reach the limit; the evaluation
// error then refuses the request (failurePolicy Fail), in that namespace
// only.
func TestCostWithinLimits(t *testing.T) {
	v := loadPolicy(t, "audienceGlobsWellFormed", "audienceRegexes", "refusedAudiences")
	var globs, audiences []string
	for i := range 40 {
		g := fmt.Sprintf("https://sts-%02d.[a-z]*.example.com/\\[role\\]/?/*-[^/]", i)
		globs = append(globs, g+strings.Repeat("z", max(0, 60-len(g))))
	}
	for i := range 20 {
		audiences = append(audiences, fmt.Sprintf("https://sts-%02d.region.example.com/[role]/x/%s", i, strings.Repeat("y", 100))[:100])
	}
	vars := map[string]any{"audienceGlobs": globs, "foreignAudiences": audiences}
	var total uint64
	for _, name := range []string{"audienceGlobsWellFormed", "audienceRegexes", "refusedAudiences"} {
		out, cost, err := v.evalCost(name, vars)
		if err != nil {
			t.Fatalf("%s: %v (cost %d)", name, err, cost)
		}
		vars[name] = out
		t.Logf("%s: cost %d of the per-call limit %d", name, cost, celconfig.PerCallLimit)
		if cost > celconfig.PerCallLimit/2 {
			t.Errorf("%s costs %d, over half of kube-apiserver's per-call limit %d", name, cost, celconfig.PerCallLimit)
		}
		total += cost
	}
	if total > celconfig.RuntimeCELCostBudget/10 {
		t.Errorf("the policy's variables cost %d, over a tenth of kube-apiserver's per-policy budget %d", total, celconfig.RuntimeCELCostBudget)
	}
}

func TestMain(m *testing.M) {
	environment.DisableBaseEnvSetCachingForTests()
	os.Exit(m.Run())
}
