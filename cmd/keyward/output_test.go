package main

import (
	"bytes"
	"encoding/json"
	"testing"
)

// A JSON array written a page at a time reads as one array, laid out as
// printJSON lays out the whole slice.
func TestJSONArrayStreams(t *testing.T) {
	type rec struct {
		ID   string `json:"id"`
		Tags []int  `json:"tags,omitempty"`
	}
	for _, pages := range [][][]rec{
		nil,
		{{}},
		{{{ID: "a"}}},
		{{{ID: "a", Tags: []int{1, 2}}, {ID: "<b>"}}, {{ID: "c"}}, {}, {{ID: "d"}}},
	} {
		var got, want bytes.Buffer
		arr := newJSONArray(&got)
		all := []rec{}
		for _, p := range pages {
			for _, r := range p {
				if err := arr.add(r); err != nil {
					t.Fatal(err)
				}
			}
			if err := arr.flush(); err != nil {
				t.Fatal(err)
			}
			all = append(all, p...)
		}
		if err := arr.close(); err != nil {
			t.Fatal(err)
		}
		if err := printJSON(&want, all); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() || !json.Valid(got.Bytes()) {
			t.Errorf("%v:\n%s\nwant\n%s", pages, got.String(), want.String())
		}
	}
}
