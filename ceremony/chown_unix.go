package ceremony

import (
	"os"
	"syscall"
)

// chownLike gives f the owner of st, where the process may (root).
func chownLike(f *os.File, st os.FileInfo) {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		_ = f.Chown(int(sys.Uid), int(sys.Gid))
	}
}
