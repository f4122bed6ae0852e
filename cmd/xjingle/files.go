package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// sendItem is one file to send: the local path, the name to offer, its size.
type sendItem struct {
	path string
	name string // a base name, or a relative path with "/" for a file in a folder
	size int64
}

// expandArgs turns send's FILE arguments into the files to send, in order:
// a file is sent under its base name; a folder is walked (lexical order,
// depth first: deterministic) and each regular file in it is sent under its
// path relative to the folder's parent, with "/" separators ("dir/sub/x.txt").
// Inside a folder, symbolic links, devices, sockets and pipes are skipped
// with a warning on warn (a link is never followed: it could lead anywhere).
// A folder argument that is itself a symbolic link is followed (the user
// named it). An argument that is neither a file nor a folder is an error.
//
// XEP-0234 §5 says a <name/> SHOULD NOT contain "/": we send it anyway for
// files in a folder, so that an xjingle receiver can rebuild the tree
// (filetransfer.SanitizePath); other clients escape or cut it, which is
// what the XEP asks of them.
func expandArgs(args []string, warn io.Writer) ([]sendItem, error) {
	var items []sendItem
	for _, arg := range args {
		fi, err := os.Stat(arg)
		if err != nil {
			return nil, fmt.Errorf("send %s: %w", arg, err)
		}
		switch {
		case fi.Mode().IsRegular():
			items = append(items, sendItem{path: arg, name: filepath.Base(arg), size: fi.Size()})
		case fi.IsDir():
			got, err := walkFolder(arg, warn)
			if err != nil {
				return nil, err
			}
			items = append(items, got...)
		default:
			return nil, fmt.Errorf("send %s: not a regular file or a folder (%s)", arg, fi.Mode().Type())
		}
	}
	return items, nil
}

// walkFolder lists the regular files under dir (see expandArgs).
func walkFolder(dir string, warn io.Writer) ([]sendItem, error) {
	base := folderName(dir)
	// Walk the folder itself even when dir is a link to it: WalkDir does
	// not descend into a root that is a link.
	walkRoot, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("send %s: %w", dir, err)
	}
	var items []sendItem
	err = filepath.WalkDir(walkRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == walkRoot {
				return err
			}
			fmt.Fprintf(warn, "xjingle: skipping %s: %v\n", p, err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(walkRoot, p)
		if err != nil {
			return err
		}
		shown := filepath.Join(dir, rel)
		if !d.Type().IsRegular() {
			fmt.Fprintf(warn, "xjingle: skipping %s: %s\n", shown, kind(d.Type()))
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			fmt.Fprintf(warn, "xjingle: skipping %s: %v\n", shown, err)
			return nil
		}
		items = append(items, sendItem{path: p, name: path.Join(base, filepath.ToSlash(rel)), size: fi.Size()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("send %s: %w", dir, err)
	}
	if len(items) == 0 {
		fmt.Fprintf(warn, "xjingle: %s holds no regular file\n", dir)
	}
	return items, nil
}

// folderName is the name a folder argument is sent under: its base name
// ("." and "/" name the current directory and the root by their real name).
func folderName(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	b := filepath.Base(dir)
	if b == string(filepath.Separator) || b == "." || b == "" {
		return "folder"
	}
	return b
}

// kind names a file type that is not sent.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link (not followed)"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeDevice != 0:
		return "device"
	default:
		return "not a regular file"
	}
}

// errNoFiles is returned when the arguments name no file to send.
var errNoFiles = errors.New("nothing to send: the folders hold no regular file")
