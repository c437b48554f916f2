//go:build !linux

package signer

import "os"

func datasync(f *os.File) error { return f.Sync() }
