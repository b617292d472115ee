package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// flagsFirst lets `keyward store put NAME --from F` work: urfave/cli v2
// stops parsing flags at the first argument, so for a verb that takes
// arguments (its ArgsUsage is set) the flags after them are moved in front
// of them. Which flags take a value is read from the verbs' own flag
// definitions; "--" ends the flags as usual.
func flagsFirst(app *cli.App, args []string) []string {
	i := 1
	skipFlags := func(flags []cli.Flag) {
		for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "-" && args[i] != "--" {
			if takesValue(flags, args[i]) {
				i++
			}
			i++
		}
	}
	skipFlags(app.Flags)
	cmds := app.Commands
	var cmd *cli.Command
	for i < len(args) {
		next := findCommand(cmds, args[i])
		if next == nil {
			break
		}
		cmd, cmds = next, next.Subcommands
		i++
	}
	if cmd == nil || cmd.ArgsUsage == "" || len(cmd.Subcommands) > 0 {
		return args
	}
	var flags, names []string
	for j := i; j < len(args); j++ {
		a := args[j]
		switch {
		case a == "--":
			names = append(names, args[j+1:]...)
			j = len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			flags = append(flags, a)
			if takesValue(cmd.Flags, a) && j+1 < len(args) {
				flags = append(flags, args[j+1])
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
	return append(append(append([]string(nil), args[:i]...), flags...), names...)
}

// takesValue says arg ("--name", "-name"; not "--name=v") is a flag of
// flags that takes a value: any but a bool flag.
func takesValue(flags []cli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
