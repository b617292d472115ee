//go:build !linux

package safefile

import (
	"errors"
	"os"
	"syscall"
)

var errNoUnnamed = errors.New("unnamed files are Linux only")

func openUnnamed(string, os.FileMode) (*os.File, error) { return nil, errNoUnnamed }

func linkUnnamed(*os.File, string) error { return errNoUnnamed }

func processExists(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}
