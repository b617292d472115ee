package main

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/term"
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

// promptSecret asks for a secret on /dev/tty without echo.
func promptSecret(_ context.Context, prompt string) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("no terminal to prompt on: %w", err)
	}
	defer tty.Close()
	fmt.Fprint(tty, prompt)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	return b, err
}
