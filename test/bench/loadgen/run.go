package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Target is one request set against one server.
type Target struct {
	// URL is the webhook's path, https://host:port/mutate-pods.
	URL    string
	Client *http.Client
	// Protocol is what every answer must have come over.
	Protocol Protocol
	// Bodies are sent in turn; UIDs[i] is the UID of Bodies[i].
	Bodies [][]byte
	UIDs   []types.UID
	// Expect checks an answer beyond its status, protocol and UID; nil
	// accepts any allowed answer.
	Expect func(*Answer) error
}

// Answer is what the load generator reads of an AdmissionReview's
// response: no more than checking it takes, so that reading a webhook's
// larger answer (its patch) costs the load generator, which shares the
// machine with the server it measures, about what reading the ceiling's
// does.
type Answer struct {
	UID       types.UID `json:"uid"`
	Allowed   bool      `json:"allowed"`
	PatchType *string   `json:"patchType,omitempty"`
	// Patch is the patch as sent (base64), not decoded.
	Patch  string `json:"patch,omitempty"`
	Status *struct {
		Message string `json:"message"`
	} `json:"status,omitempty"`
}

// Load bounds one closed-loop run.
type Load struct {
	// Concurrency is the number of workers, each with one request in flight.
	Concurrency int
	// Duration stops the run; MaxRequests stops it sooner. One of them must
	// be set.
	Duration    time.Duration
	MaxRequests int
	// Offset is where in the bodies the run starts, so that consecutive runs
	// over a set of single-use bodies (one new ServiceAccount each) never
	// send one twice.
	Offset int
}

// Result is what one run measured.
type Result struct {
	Requests int
	Errors   int
	// ErrorSamples are the first distinct errors.
	ErrorSamples []string
	Elapsed      time.Duration
	// Latencies of the successful requests, sorted.
	Latencies []time.Duration
}

const maxErrorSamples = 3

// Run sends t's bodies with l's concurrency until l's duration or count is
// reached. Every worker waits at a common start line, so a run with
// MaxRequests equal to Concurrency is a burst of simultaneous requests.
func Run(ctx context.Context, t Target, l Load) (Result, error) {
	if l.Concurrency < 1 || (l.Duration <= 0 && l.MaxRequests <= 0) || len(t.Bodies) == 0 || len(t.Bodies) != len(t.UIDs) {
		return Result{}, fmt.Errorf("loadgen: unbounded or empty run (%+v, %d bodies, %d UIDs)", l, len(t.Bodies), len(t.UIDs))
	}
	if l.Duration <= 0 {
		l.Duration = time.Hour // bounded by MaxRequests
	}
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		start  = make(chan struct{})
		ready  sync.WaitGroup
		mu     sync.Mutex
		result Result
	)
	perWorker := make([][]time.Duration, l.Concurrency)
	ready.Add(l.Concurrency)
	var deadline time.Time
	for w := range l.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-start
			lat := make([]time.Duration, 0, 1024)
			for ctx.Err() == nil && time.Now().Before(deadline) {
				n := int(next.Add(1)) - 1
				if l.MaxRequests > 0 && n >= l.MaxRequests {
					break
				}
				i := (l.Offset + n) % len(t.Bodies)
				d, err := t.do(ctx, i)
				mu.Lock()
				result.Requests++
				if err != nil {
					result.Errors++
					if len(result.ErrorSamples) < maxErrorSamples {
						result.ErrorSamples = append(result.ErrorSamples, err.Error())
					}
				}
				mu.Unlock()
				if err == nil {
					lat = append(lat, d)
				}
			}
			perWorker[w] = lat
		}()
	}
	ready.Wait()
	began := time.Now()
	deadline = began.Add(l.Duration)
	close(start)
	wg.Wait()
	result.Elapsed = time.Since(began)
	for _, lat := range perWorker {
		result.Latencies = append(result.Latencies, lat...)
	}
	sortDurations(result.Latencies)
	return result, nil
}

// do sends body i and checks the answer; the latency runs from sending the
// request to having read the whole answer, as kube-apiserver waits for it.
func (t *Target) do(ctx context.Context, i int) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(t.Bodies[i]))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	began := time.Now()
	resp, err := t.Client.Do(req)
	if err != nil {
		return 0, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(began)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, body)
	}
	if resp.ProtoMajor != t.Protocol.Major() {
		return 0, fmt.Errorf("answered over %s, want %s", resp.Proto, t.Protocol)
	}
	var review struct {
		Response *Answer `json:"response"`
	}
	if err := json.Unmarshal(body, &review); err != nil {
		return 0, fmt.Errorf("decoding the answer: %w", err)
	}
	r := review.Response
	switch {
	case r == nil:
		return 0, fmt.Errorf("answer without a response: %.200s", body)
	case r.UID != t.UIDs[i]:
		return 0, fmt.Errorf("answer for UID %q to request %q", r.UID, t.UIDs[i])
	case !r.Allowed:
		msg := ""
		if r.Status != nil {
			msg = r.Status.Message
		}
		return 0, fmt.Errorf("not allowed: %s", msg)
	}
	if t.Expect != nil {
		if err := t.Expect(r); err != nil {
			return 0, err
		}
	}
	return took, nil
}
