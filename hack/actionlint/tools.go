//go:build tools

// Package tools records the command this module exists to build: actionlint,
// which make test runs on .github/workflows (test/release), so that 'go mod
// tidy' keeps its dependencies.
package tools

import (
	_ "github.com/rhysd/actionlint/cmd/actionlint"
)
