package server

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// APIAudiencesKey is the key of the token policy's ConfigMap that holds the
// API server's audiences, comma-separated (config/tokenpolicy reads it).
const APIAudiencesKey = "apiAudiences"

// apiAudiencesRecorder learns the API server's own audiences and records
// them in the token policy's parameter, the ConfigMap configMap of the
// webhook's own namespace. The policy lets them through whatever a
// namespace allows (every pod's kube-api-access token), and must know them
// by value: validating admission sees a TokenRequest whose empty audiences
// kube-apiserver has already replaced by them, and they differ per cluster
// (--api-audiences, else --service-account-issuer).
//
// It learns them as kube-apiserver states them: it asks who it is
// (SelfSubjectReview: the webhook's ServiceAccount), requests a token with
// no audiences for that account (the shortest lifetime kube-apiserver
// allows; the token is dropped unread) and takes the audiences the answer
// carries. It writes only when they differ, so that every replica may run
// it at start-up; it retries until it succeeds.
type apiAudiencesRecorder struct {
	// Reader reads the ConfigMap live (no informer: the webhook may read
	// this one ConfigMap, not list them).
	Reader client.Reader
	// Writer asks who the webhook is, requests the token and updates the
	// ConfigMap.
	Writer    client.Client
	ConfigMap string
	// Backoff spaces the retries.
	Backoff wait.Backoff
}

// addAPIAudiencesRecorder runs an apiAudiencesRecorder with the manager
// when o names the token policy's ConfigMap.
func addAPIAudiencesRecorder(mgr ctrl.Manager, o Options) error {
	if o.TokenPolicyConfigMap == "" {
		return nil
	}
	return mgr.Add(&apiAudiencesRecorder{
		Reader: mgr.GetAPIReader(), Writer: mgr.GetClient(), ConfigMap: o.TokenPolicyConfigMap,
		Backoff: wait.Backoff{Duration: time.Second, Factor: 2, Steps: math.MaxInt32, Cap: time.Minute},
	})
}

// tokenRequestSeconds is the lifetime of the token requested to learn the
// audiences: kube-apiserver's minimum (10 minutes).
const tokenRequestSeconds = 600

// NeedLeaderElection: every replica records at start-up, so that the
// policy learns the audiences as soon as one replica runs.
func (r *apiAudiencesRecorder) NeedLeaderElection() bool { return false }

// Start records the audiences, retrying with backoff until it succeeds or
// ctx ends. It never fails the manager: admissions do not depend on it.
func (r *apiAudiencesRecorder) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithValues("configMap", r.ConfigMap)
	backoff := r.Backoff
	for {
		audiences, changed, err := r.record(ctx)
		if err == nil {
			log.Info("Recorded the API server's audiences for the token policy", "audiences", audiences, "changed", changed)
			return nil
		}
		delay := backoff.Step()
		log.Error(err, "Recording the API server's audiences for the token policy failed; TokenRequests in namespaces with a token policy fail closed until it succeeds", "retryIn", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

// record learns the audiences and writes them if they differ from the
// ConfigMap's.
func (r *apiAudiencesRecorder) record(ctx context.Context) ([]string, bool, error) {
	review := &authenticationv1.SelfSubjectReview{}
	if err := r.Writer.Create(ctx, review); err != nil {
		return nil, false, fmt.Errorf("asking who the webhook is (SelfSubjectReview): %w", err)
	}
	namespace, name, err := serviceaccount.SplitUsername(review.Status.UserInfo.Username)
	if err != nil {
		return nil, false, fmt.Errorf("the webhook runs as %q, not a ServiceAccount: %w", review.Status.UserInfo.Username, err)
	}
	account := &corev1.ServiceAccount{}
	account.Namespace, account.Name = namespace, name
	request := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(tokenRequestSeconds))}}
	if err := r.Writer.SubResource("token").Create(ctx, account, request); err != nil {
		return nil, false, fmt.Errorf("requesting a token with no audiences for %s/%s: %w", namespace, name, err)
	}
	audiences := slices.Clone(request.Spec.Audiences)
	if len(audiences) == 0 {
		return nil, false, fmt.Errorf("kube-apiserver filled in no audiences for a token requested without any")
	}
	for _, a := range audiences {
		if strings.Contains(a, ",") {
			return nil, false, fmt.Errorf("the API server's audience %q contains a comma, which the token policy's list cannot hold", a)
		}
	}
	want := strings.Join(audiences, ",")
	cm := &corev1.ConfigMap{}
	if err := r.Reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: r.ConfigMap}, cm); err != nil {
		return nil, false, fmt.Errorf("reading the token policy's ConfigMap %s/%s: %w", namespace, r.ConfigMap, err)
	}
	if cm.Data[APIAudiencesKey] == want {
		return audiences, false, nil
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[APIAudiencesKey] = want
	if err := r.Writer.Update(ctx, cm); err != nil {
		return nil, false, fmt.Errorf("updating the token policy's ConfigMap %s/%s: %w", namespace, r.ConfigMap, err)
	}
	return audiences, true, nil
}
