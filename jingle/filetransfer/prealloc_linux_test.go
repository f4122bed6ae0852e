package filetransfer

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

// smallFS mounts a 1 MiB tmpfs on a fresh directory (root only; tmpfs
// supports fallocate) and unmounts it when the test ends.
func smallFS(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func TestStoreNoSpace(t *testing.T) {
	dir := smallFS(t)
	st := &Store{Dir: dir, Resume: true}
	if _, err := st.Create("big.bin", 4<<20); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("create 4 MiB on a 1 MiB file system: %v, want ErrNoSpace", err)
	}
	peer := jid.MustParse("alice@example.test/a")
	f := File{Name: "big.bin", Size: 4 << 20, HasSize: true, Range: &Range{}}
	if _, _, err := st.CreateResumable(peer, f); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("create resumable 4 MiB: %v, want ErrNoSpace", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("left behind: %v", names)
	}

	// What fits is reserved: a second file cannot take the same space.
	in, err := st.Create("half.bin", 700<<10)
	if err != nil {
		t.Fatalf("create 700 KiB: %v", err)
	}
	if _, err := st.Create("other.bin", 700<<10); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("second 700 KiB: %v, want ErrNoSpace", err)
	}
	if _, err := in.Write(make([]byte, 700<<10)); err != nil {
		t.Fatal(err)
	}
	path, err := in.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 700<<10 {
		t.Fatalf("committed %s: %v %v", path, fi, err)
	}
	if names := dirNames(t, dir); len(names) != 1 || names[0] != filepath.Base(path) {
		t.Fatalf("directory holds %v, want only %s", names, filepath.Base(path))
	}
}

// TestOfferNoSpace: an accepted offer that does not fit ends with
// media-error and <file-too-large/> (XEP-0234 §9.2) before any data moves;
// the receiver reports ErrNoSpace, the sender ErrTooLarge, nothing is kept.
func TestOfferNoSpace(t *testing.T) {
	alice, bob := newPair(t, nil, []Option{WithAcceptPolicy(AcceptAll)})
	bob.store.Dir = smallFS(t)
	path, _ := writeFile(t, "big", 2<<20)
	_, err := alice.app.Send(ctxT(t), alice.m, bob.jid, path, SendOptions{Transport: nsPipe})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("send: %v, want ErrTooLarge", err)
	}
	var tr *Transfer
	select {
	case tr = <-bob.transfers:
	case <-time.After(10 * time.Second):
		t.Fatal("receiver reported no transfer")
	}
	<-tr.Done()
	if r := tr.Result(); !errors.Is(r.Err, ErrNoSpace) {
		t.Fatalf("receiver result: %+v, want ErrNoSpace", r)
	}
	if names := dirNames(t, bob.store.Dir); len(names) != 0 {
		t.Fatalf("left behind: %v", names)
	}
}
