package admission

import (
	"reflect"
	"slices"
	"sync/atomic"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// requestLogger is admission.DefaultLogConstructor, the framework's logger
// of each request, with the same values in the same order on every line,
// given to each line as it is written rather than to the logger when it is
// made. zap encodes a logger's values when they are given (zap.Logger.With),
// so the framework's constructor encoded its six values, the resource by
// reflection, for every admission, even though under load zap's sampler
// drops nearly every line the handler writes: that was 5 % of the
// webhook's CPU (make bench profile). TestRequestLoggerWritesAsTheFramework
// holds the lines to the framework's, byte for byte.
func requestLogger(base logr.Logger, req *admission.Request) logr.Logger {
	sink := base.GetSink()
	if req == nil || sink == nil {
		return admission.DefaultLogConstructor(base, req)
	}
	return base.WithSink(&requestValues{sink: deeper(sink), req: req})
}

// deeper is sink with one frame more between the caller and it (ours),
// made once per base sink: the framework gives every request the same,
// and zapr makes each a clone of its zap.Logger.
func deeper(sink logr.LogSink) logr.LogSink {
	cd, ok := sink.(logr.CallDepthLogSink)
	if !ok {
		return sink
	}
	if d := lastDeeper.Load(); d != nil && reflect.TypeOf(sink).Comparable() && d.of == sink {
		return d.sink
	}
	d := &deeperSink{of: sink, sink: cd.WithCallDepth(1)}
	lastDeeper.Store(d)
	return d.sink
}

type deeperSink struct{ of, sink logr.LogSink }

var lastDeeper atomic.Pointer[deeperSink]

// requestValues is a sink that puts the request's values, then those given
// to WithValues since, before each line's own.
type requestValues struct {
	sink   logr.LogSink
	req    *admission.Request
	values []any
}

func (s *requestValues) Init(logr.RuntimeInfo) {} // sink was initialised when base was made

func (s *requestValues) Enabled(level int) bool { return s.sink.Enabled(level) }

func (s *requestValues) Info(level int, msg string, keysAndValues ...any) {
	s.sink.Info(level, msg, s.with(keysAndValues)...)
}

func (s *requestValues) Error(err error, msg string, keysAndValues ...any) {
	s.sink.Error(err, msg, s.with(keysAndValues)...)
}

func (s *requestValues) WithValues(keysAndValues ...any) logr.LogSink {
	c := *s
	c.values = append(slices.Clip(s.values), keysAndValues...)
	return &c
}

func (s *requestValues) WithName(name string) logr.LogSink {
	c := *s
	c.sink = s.sink.WithName(name)
	return &c
}

func (s *requestValues) WithCallDepth(depth int) logr.LogSink {
	cd, ok := s.sink.(logr.CallDepthLogSink)
	if !ok {
		return s
	}
	c := *s
	c.sink = cd.WithCallDepth(depth)
	return &c
}

// with is DefaultLogConstructor's values, then the logger's, then the line's.
func (s *requestValues) with(keysAndValues []any) []any {
	r := s.req
	kvs := make([]any, 0, 12+len(s.values)+len(keysAndValues))
	kvs = append(kvs, "object", klog.KRef(r.Namespace, r.Name),
		"namespace", r.Namespace, "name", r.Name,
		"resource", r.Resource, "user", r.UserInfo.Username,
		"requestID", r.UID,
	)
	return append(append(kvs, s.values...), keysAndValues...)
}
