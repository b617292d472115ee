package safefile

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// openUnnamed opens a file in dir that has no name (O_TMPFILE).
func openUnnamed(dir string, perm os.FileMode) (*os.File, error) {
	if forceNamed {
		return nil, unix.EOPNOTSUPP
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, err
	}
	// The mode given to open is filtered by the umask, as for any file;
	// set it exactly, as a named file created 0600 would be.
	if err := unix.Fchmod(fd, uint32(perm.Perm())); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// linkUnnamed gives the unnamed file f the name name.
func linkUnnamed(f *os.File, name string) error {
	fd := int(f.Fd())
	err := unix.Linkat(fd, "", unix.AT_FDCWD, name, unix.AT_EMPTY_PATH)
	if err == nil {
		return nil
	}
	return linkViaProc(f, name)
}

// linkViaProc links through /proc, which needs no privilege
// (AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH).
func linkViaProc(f *os.File, name string) error {
	return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW)
}

func processExists(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || err == unix.EPERM
}
