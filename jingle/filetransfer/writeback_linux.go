package filetransfer

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing the n dirty bytes at off
// of f to disk now, without waiting for them (sync_file_range(2) with
// SYNC_FILE_RANGE_WRITE). It is a hint: durability still comes from the
// fsync in Commit (and checkpoint), which then has little left to wait for.
// Errors are ignored; the fsync reports any that matter.
func startWriteback(f *os.File, off, n int64) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}
