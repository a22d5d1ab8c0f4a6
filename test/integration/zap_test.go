package integration

import (
	"os"
	"strconv"

	"go.uber.org/zap/zapcore"
)

// zapLevel is info unless TEST_LOG_LEVEL asks for more (2 = debug) or less.
func zapLevel() zapcore.Level {
	if v, err := strconv.Atoi(os.Getenv("TEST_LOG_LEVEL")); err == nil {
		return zapcore.Level(-v)
	}
	return zapcore.ErrorLevel
}
