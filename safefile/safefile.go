package safefile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// prefix and suffix frame the names of keyward's named temporary files:
// .keyward-PID-RANDOM.tmp.
const (
	prefix = ".keyward-"
	suffix = ".tmp"
)

// File is a file being written that nobody can see at its final path
// until Commit. Close discards it unless it was committed.
type File struct {
	*os.File
	dir     string
	named   string // the fallback file's path; "" for an unnamed file
	settled bool   // committed or discarded
}

// Create starts a file, mode perm, that will be committed into dir. It
// first removes temporary files that killed keyward processes left in dir.
func Create(dir string, perm os.FileMode) (*File, error) {
	RemoveStale(dir)
	if f, err := openUnnamed(dir, perm); err == nil {
		return &File{File: f, dir: dir}, nil
	}
	name := tempName(dir)
	track(name)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		untrack(name)
		return nil, err
	}
	return &File{File: f, dir: dir, named: name}, nil
}

// Commit syncs the file and puts it at path (in the directory given to
// Create), replacing what was there.
func (f *File) Commit(path string) error { return f.commit(path, true) }

// CommitNew is Commit that refuses to replace an existing path.
func (f *File) CommitNew(path string) error { return f.commit(path, false) }

func (f *File) commit(path string, replace bool) error {
	if f.settled {
		return errors.New("safefile: file already committed or closed")
	}
	if filepath.Dir(path) != filepath.Clean(f.dir) {
		return fmt.Errorf("safefile: %s is not in %s, where the file was created", path, f.dir)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if !replace && f.named == "" {
		// The unnamed file gets its final name in one step; link
		// never replaces.
		if err := linkUnnamed(f.File, path); err != nil {
			f.Close()
			return &os.LinkError{Op: "link", Old: "(new file)", New: path, Err: err}
		}
		return f.committed()
	}
	name := f.named
	if name == "" {
		name = tempName(f.dir)
		track(name)
		if err := linkUnnamed(f.File, name); err != nil {
			untrack(name)
			f.Close()
			return fmt.Errorf("safefile: linking %s into place: %w", path, err)
		}
	}
	var err error
	if replace {
		err = os.Rename(name, path)
	} else if err = os.Link(name, path); err == nil {
		os.Remove(name)
	}
	if err != nil {
		os.Remove(name)
		untrack(name)
		f.Close()
		return err
	}
	untrack(name)
	return f.committed()
}

// committed closes a committed file and syncs its directory.
func (f *File) committed() error {
	f.settled = true
	err := f.File.Close()
	syncDir(f.dir)
	return err
}

// Close discards the file unless it was committed.
func (f *File) Close() error {
	if f.settled {
		return nil
	}
	f.settled = true
	err := f.File.Close()
	if f.named != "" {
		os.Remove(f.named)
		untrack(f.named)
	}
	return err
}

// WriteFile writes data to path (mode perm) through Create and Commit.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, (*File).Commit)
}

// WriteNewFile is WriteFile that refuses to replace an existing path.
func WriteNewFile(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, (*File).CommitNew)
}

func write(path string, data []byte, perm os.FileMode, commit func(*File, string) error) error {
	f, err := Create(filepath.Dir(path), perm)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return commit(f, path)
}

// RemoveStale removes the named temporary files in dir whose keyward
// process is gone (killed before it could remove them). Files of live
// processes, and of other users' processes, are left alone.
func RemoveStale(dir string) {
	matches, _ := filepath.Glob(filepath.Join(dir, prefix+"*"+suffix))
	for _, m := range matches {
		pid, ok := pidOf(filepath.Base(m))
		if ok && pid != os.Getpid() && !processExists(pid) {
			os.Remove(m)
		}
	}
}

func tempName(dir string) string {
	var b [8]byte
	rand.Read(b[:])
	return filepath.Join(dir, prefix+strconv.Itoa(os.Getpid())+"-"+hex.EncodeToString(b[:])+suffix)
}

// pidOf reads the PID out of a name tempName made.
func pidOf(base string) (int, bool) {
	rest, ok := strings.CutPrefix(base, prefix)
	if !ok {
		return 0, false
	}
	rest, ok = strings.CutSuffix(rest, suffix)
	if !ok {
		return 0, false
	}
	p, r, ok := strings.Cut(rest, "-")
	if !ok || len(r) != 16 {
		return 0, false
	}
	pid, err := strconv.Atoi(p)
	return pid, err == nil && pid > 0
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
