// Package safefile writes files that appear whole or not at all: a
// decrypted file, a scrubbed system.yaml, a bootstrap token. Nothing it
// writes is left behind, named, when the write fails or the process is
// stopped.
//
// # Where the bytes wait
//
// Create opens the file being written in the directory it will end up in.
// On Linux it is an unnamed file (O_TMPFILE): it has no name until Commit
// links it into place, so if the process is killed — even by SIGKILL — the
// kernel frees it and no plaintext stays on disk. Where the filesystem or
// the OS cannot do that, the file is named .keyward-PID-RANDOM.tmp, mode
// 0600, and removed on failure, on Close, and on SIGINT, SIGTERM or SIGHUP;
// one left by a process that was killed is removed by the next Create in
// that directory once its PID is gone.
//
// # Signals
//
// While a named file exists (a fallback file, or the moment between link
// and rename in Commit) a handler for SIGINT, SIGTERM and SIGHUP removes
// it and then lets the signal end the process as it would have (exit
// status 128+signal), so an interrupted keyward never exits 0 and never
// leaves a file.
package safefile
