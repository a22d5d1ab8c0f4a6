//go:build !linux

package main

// takeForeground is Linux-only (see foreground_linux.go); elsewhere `make run`
// keeps make's behaviour on Ctrl-C.
func takeForeground() (restore func()) { return func() {} }
