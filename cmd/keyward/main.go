// Command keyward manages the master and join keys of a service cluster
// inside a PKCS#11 device. This package only parses flags, prompts and
// prints; the work is done by the library packages.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/keyward/keyward/keystore"
	"github.com/urfave/cli/v2"
)

// Exit codes. Never renumber them: scripts depend on them.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitCheckFailed = 3
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
	err := app.Run(hoistFlags(args))
	if code >= 0 {
		return code
	}
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "keyward: %v\n", err)
	var u usageError
	if errors.As(err, &u) && u.cmd != nil {
		showUsage(stderr, u.cmd)
	}
	return exitCode(err)
}

// valueFlags are the flags of NAME-taking verbs that take a value.
var valueFlags = map[string]bool{"--from": true, "--out": true, "--max-record": true}

// hoistFlags lets `keyward store put NAME --from F` work: urfave/cli stops
// parsing flags at the first argument, so for the store verbs the flags
// after NAME are moved in front of it.
func hoistFlags(args []string) []string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] != "store" {
			continue
		}
		switch args[i+1] {
		case "put", "get", "delete":
		default:
			return args
		}
		head := append([]string(nil), args[:i+2]...)
		var flags, names []string
		rest := args[i+2:]
		for j := 0; j < len(rest); j++ {
			a := rest[j]
			switch {
			case a == "--":
				names = append(names, rest[j+1:]...)
				j = len(rest)
			case strings.HasPrefix(a, "-") && a != "-":
				flags = append(flags, a)
				if valueFlags[a] && j+1 < len(rest) {
					flags = append(flags, rest[j+1])
					j++
				}
			default:
				names = append(names, a)
			}
		}
		for _, n := range names {
			if strings.HasPrefix(n, "-") {
				names = append([]string{"--"}, names...)
				break
			}
		}
		return append(append(head, flags...), names...)
	}
	return args
}

// usageError is a mistake in the command line; cmd, when known, is the
// command whose usage is shown after the message.
type usageError struct {
	error
	cmd *cli.Command
}

func (e usageError) Unwrap() error { return e.error }

// checkFailed is a check that ran and said no: KCV mismatch, invalid
// token, authentication failure.
type checkFailed struct{ error }

func (e checkFailed) Unwrap() error { return e.error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...), nil} }

func exitCode(err error) int {
	var u usageError
	var c checkFailed
	switch {
	case errors.As(err, &u), errors.Is(err, keystore.ErrDSN):
		return exitUsage
	case errors.As(err, &c) || isCheckFailure(err):
		return exitCheckFailed
	}
	return exitError
}
