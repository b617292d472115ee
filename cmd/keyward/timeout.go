package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"
)

// A command that waits on the device or the database waits at most
// --timeout: its context ends then (waiting for a session or the database
// gives up), and should a device call itself hang past that — a PKCS#11
// call cannot be interrupted — the process says so and exits 1 a little
// later. serve and bootstrap --watch run until stopped.

// watchdogGrace is how long after --timeout a hung command is ended.
const watchdogGrace = 5 * time.Second

// untimed says cmd runs until stopped.
func untimed(c *cli.Context, cmd *cli.Command) bool {
	return cmd.Name == "serve" || (cmd.Name == "bootstrap" && c.Bool("watch"))
}

// bounded gives the command its deadline and watchdog; call the returned
// func when it ends.
func bounded(c *cli.Context, cmd *cli.Command) func() {
	d := c.Duration("timeout")
	if d <= 0 || untimed(c, cmd) {
		return func() {}
	}
	ctx, cancel := context.WithTimeout(c.Context, d)
	c.Context = ctx
	dog := time.AfterFunc(d+watchdogGrace, func() {
		fmt.Fprintf(c.App.ErrWriter, "keyward: no answer within %v (--timeout, KEYWARD_TIMEOUT): the device or the database does not answer\n", d)
		os.Exit(exitError)
	})
	return func() {
		dog.Stop()
		cancel()
	}
}
