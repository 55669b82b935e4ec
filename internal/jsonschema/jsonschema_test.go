package jsonschema

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testSchema = `{"$defs": {
  "n": {"type": "integer", "minimum": 0, "maximum": 10},
  "doc": {"type": "object", "additionalProperties": false, "required": ["schema", "list"],
    "properties": {
      "schema": {"const": "t/1"},
      "list": {"type": "array", "items": {"$ref": "#/$defs/n"}},
      "kind": {"enum": ["a", "b"]},
      "opt": {"anyOf": [{"type": "null"}, {"type": "string"}]},
      "f": {"type": "number"}}}}}`

func TestValidate(t *testing.T) {
	s, err := Parse([]byte(testSchema))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ doc, wantErr string }{
		{`{"schema": "t/1", "list": [0, 10], "kind": "a", "opt": null, "f": 1.5}`, ""},
		{`{"schema": "t/1", "list": [], "opt": "x"}`, ""},
		{`{"schema": "t/1", "list": null}`, "want type array"},
		{`{"schema": "t/2", "list": []}`, "want t/1"},
		{`{"list": []}`, `missing required field "schema"`},
		{`{"schema": "t/1", "list": [], "Extra": 1}`, `"Extra" is not in the schema`},
		{`{"schema": "t/1", "list": [1.5]}`, "want type integer"},
		{`{"schema": "t/1", "list": [11]}`, "maximum"},
		{`{"schema": "t/1", "list": [-1]}`, "minimum"},
		{`{"schema": "t/1", "list": [], "kind": "c"}`, "want one of"},
		{`{"schema": "t/1", "list": [], "opt": 3}`, "anyOf"},
		{`{"schema": "t/1", "list": [], "f": "1"}`, "want type number"},
		{`{"schema": "t/1", "list": []} {}`, "trailing"},
	} {
		errs := s.Validate([]byte(tc.doc), "doc")
		var got []string
		for _, e := range errs {
			got = append(got, e.Error())
		}
		all := strings.Join(got, "; ")
		if tc.wantErr == "" && len(errs) != 0 || tc.wantErr != "" && !strings.Contains(all, tc.wantErr) {
			t.Errorf("%s: errors %q, want %q", tc.doc, all, tc.wantErr)
		}
	}
}

func TestParseRefusesWhatItCannotCheck(t *testing.T) {
	for _, bad := range []string{
		`{"$defs": {"x": {"type": "string", "pattern": "^a"}}}`,
		`{"$defs": {"x": {"$ref": "#/$defs/missing"}}}`,
		`{"$defs": {"x": {"properties": {"a": {"oneOf": []}}}}}`,
		`[1]`,
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%s) accepted it", bad)
		}
	}
}

// TestRepositorySchemaParses: docs/json.schema.json stays within the subset.
func TestRepositorySchemaParses(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "json.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b); err != nil {
		t.Fatal(err)
	}
}
