package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/node"
	"github.com/keyward/keyward/safefile"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

func storeCommand() *cli.Command {
	name := func(c *cli.Context) (string, error) {
		if c.NArg() != 1 || c.Args().First() == "" {
			return "", usagef("give exactly one record NAME")
		}
		return c.Args().First(), nil
	}
	return &cli.Command{
		Name:  "store",
		Usage: "encrypted records in the shared database",
		Subcommands: []*cli.Command{
			{
				Name: "put", Usage: "encrypt a value in the device and store it as NAME", ArgsUsage: "NAME",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "from", Usage: "file with the value; - for standard input (required)"},
					&cli.Int64Flag{Name: "max-record", EnvVars: []string{"KEYWARD_MAX_RECORD"}, Value: keystore.DefaultMaxRecord, Usage: "largest value stored, in bytes"},
				},
				Action: func(c *cli.Context) error {
					n, err := name(c)
					if err != nil {
						return err
					}
					if err := keystore.CheckRecordName(n); err != nil {
						return usageError{err, nil}
					}
					if c.String("from") == "" {
						return usagef("--from FILE (or - for standard input) is required: values never go on the command line")
					}
					max := c.Int64("max-record")
					if max < 1 {
						return usagef("--max-record must be at least 1")
					}
					value, err := readInputLimited(c, c.String("from"), max)
					if err != nil {
						return err
					}
					defer clear(value)
					cfg, err := nodeConfig(c)
					if err != nil {
						return err
					}
					cfg.MaxRecord = max
					nd, err := openConfigured(c, cfg)
					if err != nil {
						return err
					}
					defer nd.Close()
					if err := nd.Put(c.Context, n, value); err != nil {
						return err
					}
					fmt.Fprintf(c.App.ErrWriter, "keyward: %s stored (%d bytes)\n", n, len(value))
					return nil
				},
			},
			{
				Name: "get", Usage: "decrypt record NAME", ArgsUsage: "NAME",
				Flags: []cli.Flag{&cli.StringFlag{Name: "out", Value: "-", Usage: "file to write (created 0600); - for standard output"}},
				Action: func(c *cli.Context) error {
					n, err := name(c)
					if err != nil {
						return err
					}
					return withNode(c, false, func(nd *node.Node) error {
						value, err := nd.Get(c.Context, n)
						if err != nil {
							return err
						}
						defer clear(value)
						return writeOutput(c, c.String("out"), func(w io.Writer) error { _, err := w.Write(value); return err })
					})
				},
			},
			{
				Name: "list", Usage: "list records (names, key versions, sizes; never values)",
				Action: func(c *cli.Context) error {
					return withNode(c, false, func(nd *node.Node) error {
						recs, err := nd.Records(c.Context)
						if err != nil {
							return err
						}
						return printList(c, recs, []string{"NAME", "MASTER", "BYTES", "UPDATED"}, func(r keystore.Record) []string {
							return []string{r.Name, "v" + strconv.Itoa(r.KeyVersion), strconv.Itoa(r.Size), r.Updated.Format(time.RFC3339)}
						})
					})
				},
			},
			{
				Name: "delete", Usage: "delete record NAME", ArgsUsage: "NAME",
				Action: func(c *cli.Context) error {
					n, err := name(c)
					if err != nil {
						return err
					}
					return withNode(c, false, func(nd *node.Node) error { return nd.Delete(c.Context, n) })
				},
			},
			{
				Name:  "rewrap",
				Usage: "re-encrypt records under older master versions with the active one (resumable, safe on several nodes at once)",
				Flags: []cli.Flag{&cli.IntFlag{Name: "batch", Value: 1000, Usage: "records per transaction"}},
				Action: func(c *cli.Context) error {
					return withNode(c, false, func(nd *node.Node) error {
						var progress func(int, int)
						if f, ok := c.App.ErrWriter.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
							progress = func(d, total int) {
								width := 40
								filled := width * d / max(total, 1)
								fmt.Fprintf(f, "\r[%s%s] %d/%d", strings.Repeat("#", min(filled, width)), strings.Repeat(" ", max(width-filled, 0)), d, total)
							}
						}
						start := time.Now()
						n, err := nd.Rewrap(c.Context, c.Int("batch"), progress)
						if progress != nil {
							fmt.Fprintln(c.App.ErrWriter)
						}
						if err != nil {
							return fmt.Errorf("%w (%d records were rewrapped and committed; run it again to resume)", err, n)
						}
						fmt.Fprintf(c.App.Writer, "%d records rewrapped in %s\n", n, time.Since(start).Round(time.Millisecond))
						return nil
					})
				},
			},
		},
	}
}

func cryptCommands() []*cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "in", Value: "-", Usage: "input file; - for standard input"},
		&cli.StringFlag{Name: "out", Value: "-", Usage: "output file; - for standard output"},
		&cli.StringFlag{Name: "context", Usage: "a label the ciphertext is bound to; decrypt needs the same"},
	}
	return []*cli.Command{
		{
			Name: "encrypt", Usage: "encrypt a file of any size with the active master key, in the device", Flags: flags,
			Action: cryptFile((*node.Node).EncryptStream),
		},
		{
			Name: "decrypt", Usage: "decrypt what keyward encrypt wrote; nothing is written unless all of it authenticates", Flags: flags,
			Action: cryptFile((*node.Node).DecryptStream),
		},
	}
}

// cryptFile is the action of encrypt and decrypt: crypt (the node's
// EncryptStream or DecryptStream) from --in to --out, bound to --context.
func cryptFile(crypt func(n *node.Node, ctx context.Context, in io.Reader, out io.Writer, label string) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		return withNode(c, false, func(nd *node.Node) error {
			in, closeIn, err := openInput(c, c.String("in"))
			if err != nil {
				return err
			}
			defer closeIn()
			return writeOutput(c, c.String("out"), func(w io.Writer) error {
				return crypt(nd, c.Context, in, w, c.String("context"))
			})
		})
	}
}

// readInputLimited reads a whole value from a file or stdin, stopping,
// before reading it all, at a value over max bytes.
func readInputLimited(c *cli.Context, path string, max int64) ([]byte, error) {
	in, closeIn, err := openInput(c, path)
	if err != nil {
		return nil, err
	}
	defer closeIn()
	value, err := io.ReadAll(io.LimitReader(in, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(value)) > max {
		clear(value)
		return nil, fmt.Errorf("%w: the value is over --max-record (%d bytes); raise --max-record (KEYWARD_MAX_RECORD) to store it", keystore.ErrTooLarge, max)
	}
	return value, nil
}

func openInput(c *cli.Context, path string) (io.Reader, func(), error) {
	if path == "-" {
		return c.App.Reader, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

// writeOutput runs write into a file no one can see until write succeeds
// (safefile: unnamed on Linux, removed on failure and on SIGINT/SIGTERM),
// then puts it at path, so a failed or interrupted decryption leaves
// nothing. For standard output the file is copied out at the end, for the
// same reason.
func writeOutput(c *cli.Context, path string, write func(io.Writer) error) error {
	dir := os.TempDir()
	if path != "-" {
		dir = filepath.Dir(path)
	}
	tmp, err := safefile.Create(dir, 0o600)
	if err != nil {
		return err
	}
	defer tmp.Close()
	if err := write(tmp); err != nil {
		return err
	}
	if path != "-" {
		return tmp.Commit(path)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err = io.Copy(c.App.Writer, tmp)
	return err
}
