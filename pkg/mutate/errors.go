package mutate

import (
	"errors"
	"fmt"
	"strconv"
)

// maxQuoted bounds how much of a bad value an error echoes back, so that a
// 10 000-character annotation does not come back as a 10 000-character denial.
const maxQuoted = 80

// InvalidError is a policy violation: the pod asks for something we will not
// do. Its message names the field (an annotation or a pod field), the value
// given and what is accepted, so the author can fix the manifest from the
// denial alone.
type InvalidError struct {
	// Field is the annotation key or pod field path at fault.
	Field string
	// Value is the offending value as given.
	Value string
	// Accepted says what would have been accepted instead.
	Accepted string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("%s: %s is not accepted: %s", e.Field, quote(e.Value), e.Accepted)
}

// IsInvalid reports whether err is, or wraps, a policy violation.
func IsInvalid(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie)
}

func invalid(field, value, accepted string, args ...any) error {
	return &InvalidError{Field: field, Value: value, Accepted: fmt.Sprintf(accepted, args...)}
}

func quote(v string) string {
	if len(v) <= maxQuoted {
		return strconv.Quote(v)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(v[:maxQuoted]), len(v))
}
