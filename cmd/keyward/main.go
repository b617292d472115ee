// Command keyward manages the master and join keys of a service cluster
// inside a PKCS#11 device. This package only parses flags, prompts and
// prints; the work is done by the library packages.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

func newApp() *cli.App {
	app := &cli.App{
		Name:                 "keyward",
		Usage:                "hardware-backed master and join keys over PKCS#11",
		UsageText:            "keyward [global flags] <noun> <verb> [flags]",
		Flags:                globalFlags(),
		EnableBashCompletion: false,
		HideHelpCommand:      true,
		Commands: append([]*cli.Command{
			keyCommand(),
			storeCommand(),
			tokenCommand(),
			pairingCommand(),
			bootstrapCommand(),
			ceremonyCommand(),
			nodeCommand(),
			doctorCommand(),
			softhsmCommand(),
			serveCommand(),
		}, cryptCommands()...),
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{fmt.Errorf("%w; see keyward --help", err), nil}
		},
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(c.App.ErrWriter, "keyward: unknown command %q; see keyward --help\n", name)
			cli.OsExiter(exitUsage)
		},
	}
	for _, cmd := range app.Commands {
		usageOnStderr(cmd)
	}
	return app
}

// usageOnStderr makes every mistake in cmd's command line (and its
// subcommands') a usage error, exit 2, its message and the command's
// usage on standard error: urfave/cli prints an unknown flag's usage on
// standard output and exits 1 unless told otherwise.
func usageOnStderr(cmd *cli.Command) {
	cmd.HideHelpCommand = true
	cmd.OnUsageError = func(c *cli.Context, err error, _ bool) error {
		return usageError{err, cmd}
	}
	if action := cmd.Action; action != nil {
		cmd.Action = func(c *cli.Context) error {
			defer bounded(c, cmd)()
			err := action(c)
			var u usageError
			if errors.As(err, &u) && u.cmd == nil {
				return usageError{err, cmd}
			}
			return err
		}
	}
	for _, sub := range cmd.Subcommands {
		usageOnStderr(sub)
	}
}

// showUsage prints cmd's usage to w, as --help would.
func showUsage(w io.Writer, cmd *cli.Command) {
	tmpl := cli.CommandHelpTemplate
	if len(cmd.Subcommands) > 0 {
		tmpl = cli.SubcommandHelpTemplate
	}
	fmt.Fprintln(w)
	cli.HelpPrinter(w, tmpl, cmd)
}

// run executes keyward with args and returns the exit code.
func run(args []string, stdin *os.File, stdout, stderr *os.File) int {
	app := newApp()
	app.Reader, app.Writer, app.ErrWriter = stdin, stdout, stderr
	code := -1
	cli.OsExiter = func(c int) { code = c }
	app.ExitErrHandler = func(*cli.Context, error) {}
	err := app.Run(flagsFirst(app, args))
	if code >= 0 {
		return code
	}
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "keyward: %s\n", message(err))
	var u usageError
	if errors.As(err, &u) && u.cmd != nil {
		showUsage(stderr, u.cmd)
	}
	return exitCode(err)
}

// usageError is a mistake in the command line; cmd, when known, is the
// command whose usage is shown after the message.
type usageError struct {
	error
	cmd *cli.Command
}

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...), nil} }
