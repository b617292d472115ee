package safefile

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// forceNamed makes Create use named files, for tests of that path.
var forceNamed = os.Getenv("KEYWARD_SAFEFILE_NAMED") == "1"

var (
	mu      sync.Mutex
	pending = map[string]bool{}
	signals chan os.Signal
)

// track records a named file to remove if a signal stops the process, and
// installs the handler while there is one.
func track(name string) {
	mu.Lock()
	defer mu.Unlock()
	pending[name] = true
	if signals == nil {
		signals = make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		go onSignal(signals)
	}
}

func untrack(name string) {
	mu.Lock()
	defer mu.Unlock()
	delete(pending, name)
	if len(pending) == 0 && signals != nil {
		signal.Stop(signals)
		close(signals)
		signals = nil
	}
}

// onSignal removes the pending files, then lets the signal take its
// default course (the process ends with status 128+signal). It holds the
// lock to the end so no new file is tracked in between.
func onSignal(c chan os.Signal) {
	sig, ok := <-c
	if !ok {
		return
	}
	mu.Lock()
	for name := range pending {
		os.Remove(name)
	}
	signal.Reset(sig)
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		p.Signal(sig)
	}
	// The signal ends the process; should it not (a handler elsewhere in
	// the process), end it as the signal would have.
	time.Sleep(time.Second)
	code := 1
	if s, ok := sig.(syscall.Signal); ok {
		code = 128 + int(s)
	}
	os.Exit(code)
}
