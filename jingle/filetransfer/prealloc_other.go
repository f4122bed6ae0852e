//go:build !linux

package filetransfer

import "os"

// preallocate is a no-op where fallocate(2) does not exist: a full disk is
// then found at the first write that does not fit.
func preallocate(f *os.File, off, n int64) error { return nil }
