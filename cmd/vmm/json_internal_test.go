package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestWriteJSONEmptyLists: nil slices at any depth print as [], nil
// pointers stay null.
func TestWriteJSONEmptyLists(t *testing.T) {
	type inner struct {
		List []int `json:"list"`
	}
	type doc struct {
		Top    []string `json:"top"`
		Nested []inner  `json:"nested"`
		Ptr    *inner   `json:"ptr"`
		Nil    *inner   `json:"nil"`
		Arr    [1]inner `json:"arr"`
		Raw    []byte   `json:"raw"`
	}
	var b bytes.Buffer
	if err := writeJSON(&b, doc{Nested: []inner{{}}, Ptr: &inner{}}); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(strings.Fields(b.String()), "")
	want := `{"top":[],"nested":[{"list":[]}],"ptr":{"list":[]},"nil":null,"arr":[{"list":[]}],"raw":null}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
