package loadgen

import (
	"slices"
	"time"
)

// Throughput is the number of successful requests per second.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(len(r.Latencies)) / r.Elapsed.Seconds()
}

// Quantile is the latency below which a fraction q of the successful
// requests finished (nearest rank), or 0 when none did.
func (r Result) Quantile(q float64) time.Duration {
	n := len(r.Latencies)
	if n == 0 {
		return 0
	}
	i := int(q*float64(n)+0.999999) - 1
	return r.Latencies[min(max(i, 0), n-1)]
}

// Max is the slowest successful request.
func (r Result) Max() time.Duration { return r.Quantile(1) }

// Merge pools runs of one configuration: requests, errors, time and
// latencies add up.
func Merge(rs ...Result) Result {
	var m Result
	for _, r := range rs {
		m.Requests += r.Requests
		m.Errors += r.Errors
		m.Elapsed += r.Elapsed
		m.Latencies = append(m.Latencies, r.Latencies...)
		for _, e := range r.ErrorSamples {
			if len(m.ErrorSamples) < maxErrorSamples {
				m.ErrorSamples = append(m.ErrorSamples, e)
			}
		}
	}
	sortDurations(m.Latencies)
	return m
}

func sortDurations(d []time.Duration) { slices.Sort(d) }
