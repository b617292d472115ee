package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v2"
)

// printJSON writes v as indented JSON: the stable --json output.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jsonArray writes a JSON array element by element, laid out as printJSON
// lays out a slice, so that a listing of any length streams: add buffers,
// flush writes what was added.
type jsonArray struct {
	w *bufio.Writer
	n int
}

func newJSONArray(w io.Writer) *jsonArray { return &jsonArray{w: bufio.NewWriter(w)} }

func (a *jsonArray) add(v any) error {
	j, err := json.MarshalIndent(v, "  ", "  ")
	if err != nil {
		return err
	}
	sep := ",\n  "
	if a.n == 0 {
		sep = "[\n  "
	}
	a.n++
	a.w.WriteString(sep)
	a.w.Write(j)
	return nil
}

func (a *jsonArray) flush() error { return a.w.Flush() }

// close ends the array ("[]" when it has no element) and flushes.
func (a *jsonArray) close() error {
	end := "\n]\n"
	if a.n == 0 {
		end = "[]\n"
	}
	a.w.WriteString(end)
	return a.w.Flush()
}

// printable returns s as is, or quoted with Go escapes if it holds
// anything a terminal would act on instead of show (escape sequences,
// control characters, bidirectional overrides, invalid UTF-8): names and
// descriptions come from other people.
func printable(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) && r != ' ' {
			return strconv.QuoteToGraphic(s)
		}
	}
	return s
}

// printList writes items as the --json output (an empty list as [], never
// null) or as a table under header, a row each.
func printList[T any](c *cli.Context, items []T, header []string, row func(T) []string) error {
	if c.Bool("json") {
		if items == nil {
			items = []T{}
		}
		return printJSON(c.App.Writer, items)
	}
	rows := make([][]string, len(items))
	for i, it := range items {
		rows[i] = row(it)
	}
	printTable(c.App.Writer, header, rows)
	return nil
}

// printTable writes rows under header (none when nil), aligned.
func printTable(w io.Writer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(cells []string) {
		for i, c := range cells {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, printable(c))
		}
		fmt.Fprintln(tw)
	}
	if header != nil {
		line(header)
	}
	for _, r := range rows {
		line(r)
	}
	tw.Flush()
}
