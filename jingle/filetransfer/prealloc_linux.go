package filetransfer

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// preallocate reserves disk space for the n bytes at off of f with
// fallocate(2) and FALLOC_FL_KEEP_SIZE (the file's size does not change, so
// Written and the size check of Commit are unaffected). A file system
// without room for them fails here, before the data crosses the network,
// instead of at the last write or at the fsync of Commit. Only "no room"
// errors are returned (ENOSPC, EDQUOT, EFBIG); a file system that cannot
// preallocate (EOPNOTSUPP) just goes without.
func preallocate(f *os.File, off, n int64) error {
	if n <= 0 {
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	var ferr error
	rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Fallocate(int(fd), unix.FALLOC_FL_KEEP_SIZE, off, n)
			if !errors.Is(ferr, unix.EINTR) {
				return
			}
		}
	})
	if errors.Is(ferr, unix.ENOSPC) || errors.Is(ferr, unix.EDQUOT) || errors.Is(ferr, unix.EFBIG) {
		return ferr
	}
	return nil
}
