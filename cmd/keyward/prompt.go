package main

import (
	"context"
	"fmt"
	"os"
)

// ttyPrompt returns a hidden-input prompt on the controlling terminal, or
// nil when there is none (a script, CI).
func ttyPrompt() func(ctx context.Context, prompt string) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil
	}
	tty.Close()
	return promptSecret
}

// promptSecret asks for a secret on /dev/tty without echo. Echo goes off
// before the prompt is shown, so nothing typed ahead of it is echoed
// either.
func promptSecret(_ context.Context, prompt string) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("no terminal to prompt on: %w", err)
	}
	defer tty.Close()
	restore, err := echoOff(tty)
	if err != nil {
		return nil, fmt.Errorf("cannot turn terminal echo off: %w", err)
	}
	defer restore()
	fmt.Fprint(tty, prompt)
	b, err := readLine(tty)
	fmt.Fprintln(tty)
	return b, err
}

// readLine reads up to a newline, a byte at a time so that nothing past
// it is consumed.
func readLine(tty *os.File) ([]byte, error) {
	var line []byte
	var c [1]byte
	for {
		n, err := tty.Read(c[:])
		if n == 1 {
			if c[0] == '\n' {
				break
			}
			line = append(line, c[0])
		}
		if err != nil {
			if len(line) > 0 {
				break
			}
			clear(line)
			return nil, err
		}
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}
