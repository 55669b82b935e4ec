// Package jsonschema validates JSON documents against the subset of JSON
// Schema (draft 2020-12) that docs/json.schema.json uses: type, properties,
// required, additionalProperties, items, const, enum, minimum, maximum,
// anyOf and local $ref ("#/$defs/name"). A schema that uses any other
// keyword is refused, so the schema can never silently mean more than
// this validator checks.
package jsonschema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"slices"
	"sort"
	"strings"
)

// Schema is a parsed schema document.
type Schema struct {
	root map[string]any
}

// known are the keywords this validator understands; annotations are
// accepted and ignored.
var known = map[string]bool{
	"type": true, "properties": true, "required": true, "additionalProperties": true, "items": true,
	"const": true, "enum": true, "minimum": true, "maximum": true, "anyOf": true, "$ref": true,
	"$schema": true, "$id": true, "$defs": true, "title": true, "description": true,
}

// Parse reads a schema and checks it uses only the supported keywords.
func Parse(data []byte) (*Schema, error) {
	v, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	root, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("schema: not an object")
	}
	s := &Schema{root: root}
	if err := s.check(root, "#"); err != nil {
		return nil, err
	}
	return s, nil
}

// check walks every subschema of node and refuses unknown keywords and
// dangling references.
func (s *Schema) check(node map[string]any, at string) error {
	for k, v := range node {
		if !known[k] {
			return fmt.Errorf("schema %s: unsupported keyword %q", at, k)
		}
		var subs map[string]any
		switch k {
		case "properties", "$defs":
			subs, _ = v.(map[string]any)
		case "items", "additionalProperties":
			if m, ok := v.(map[string]any); ok {
				subs = map[string]any{"": m}
			}
		case "anyOf":
			list, _ := v.([]any)
			subs = map[string]any{}
			for i, x := range list {
				subs[fmt.Sprint(i)] = x
			}
		case "$ref":
			if _, err := s.resolve(fmt.Sprint(v)); err != nil {
				return fmt.Errorf("schema %s: %w", at, err)
			}
		}
		for name, sub := range subs {
			m, ok := sub.(map[string]any)
			if !ok {
				return fmt.Errorf("schema %s/%s/%s: not a schema object", at, k, name)
			}
			if err := s.check(m, at+"/"+k+"/"+name); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Schema) resolve(ref string) (map[string]any, error) {
	name, ok := strings.CutPrefix(ref, "#/$defs/")
	defs, _ := s.root["$defs"].(map[string]any)
	def, found := defs[name].(map[string]any)
	if !ok || !found {
		return nil, fmt.Errorf("unresolvable $ref %q", ref)
	}
	return def, nil
}

// Validate checks the JSON document data against the definition named def
// ("#/$defs/def") and returns every place it breaks the schema.
func (s *Schema) Validate(data []byte, def string) []error {
	v, err := decode(data)
	if err != nil {
		return []error{err}
	}
	node, err := s.resolve("#/$defs/" + def)
	if err != nil {
		return []error{err}
	}
	var errs []error
	s.validate(node, v, "$", &errs, 0)
	return errs
}

const maxDepth = 64

func (s *Schema) validate(node map[string]any, v any, path string, errs *[]error, depth int) {
	bad := func(format string, args ...any) {
		*errs = append(*errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if depth > maxDepth {
		bad("schema nesting deeper than %d", maxDepth)
		return
	}
	if ref, ok := node["$ref"]; ok {
		sub, err := s.resolve(fmt.Sprint(ref))
		if err != nil {
			bad("%v", err)
			return
		}
		s.validate(sub, v, path, errs, depth+1)
	}
	if t, ok := node["type"]; ok && !typeMatches(t, v) {
		bad("is %s, want type %v", typeName(v), t)
		return
	}
	if c, ok := node["const"]; ok && !reflect.DeepEqual(c, v) {
		bad("is %v, want %v", v, c)
	}
	if e, ok := node["enum"].([]any); ok && !slices.ContainsFunc(e, func(x any) bool { return reflect.DeepEqual(x, v) }) {
		bad("is %v, want one of %v", v, e)
	}
	if n, ok := v.(json.Number); ok {
		bound(node, "minimum", n, -1, bad)
		bound(node, "maximum", n, 1, bad)
	}
	if alts, ok := node["anyOf"].([]any); ok {
		matched := false
		for _, alt := range alts {
			var sub []error
			s.validate(alt.(map[string]any), v, path, &sub, depth+1)
			if len(sub) == 0 {
				matched = true
				break
			}
		}
		if !matched {
			bad("matches none of anyOf")
		}
	}
	switch x := v.(type) {
	case map[string]any:
		s.object(node, x, path, errs, depth)
	case []any:
		if items, ok := node["items"].(map[string]any); ok {
			for i, e := range x {
				s.validate(items, e, fmt.Sprintf("%s[%d]", path, i), errs, depth+1)
			}
		}
	}
}

func (s *Schema) object(node map[string]any, x map[string]any, path string, errs *[]error, depth int) {
	props, _ := node["properties"].(map[string]any)
	if req, ok := node["required"].([]any); ok {
		for _, r := range req {
			if _, ok := x[fmt.Sprint(r)]; !ok {
				*errs = append(*errs, fmt.Errorf("%s: missing required field %q", path, r))
			}
		}
	}
	keys := make([]string, 0, len(x))
	for k := range x {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if p, ok := props[k].(map[string]any); ok {
			s.validate(p, x[k], path+"."+k, errs, depth+1)
			continue
		}
		switch ap := node["additionalProperties"].(type) {
		case bool:
			if !ap {
				*errs = append(*errs, fmt.Errorf("%s: field %q is not in the schema", path, k))
			}
		case map[string]any:
			s.validate(ap, x[k], path+"."+k, errs, depth+1)
		}
	}
}

// bound checks n against node[key]; sign -1 means n must not be below it.
func bound(node map[string]any, key string, n json.Number, sign int, bad func(string, ...any)) {
	b, ok := node[key].(json.Number)
	if !ok {
		return
	}
	nv, ok1 := new(big.Float).SetString(n.String())
	bv, ok2 := new(big.Float).SetString(b.String())
	if ok1 && ok2 && nv.Cmp(bv) == sign {
		bad("%s is %s, %s %s", n, key, key, b)
	}
}

func typeMatches(t, v any) bool {
	switch t := t.(type) {
	case string:
		return isType(t, v)
	case []any:
		return slices.ContainsFunc(t, func(x any) bool { s, _ := x.(string); return isType(s, v) })
	}
	return false
}

func isType(t string, v any) bool {
	switch t {
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		_, ok = new(big.Int).SetString(n.String(), 10)
		return ok
	case "number":
		_, ok := v.(json.Number)
		return ok
	}
	return typeName(v) == t
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// decode parses one JSON value, numbers kept exact.
func decode(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if d.More() {
		return nil, fmt.Errorf("not one JSON value: trailing data")
	}
	return v, nil
}
