package main

import (
	"encoding/json"
	"io"
	"reflect"
)

// Schema versions of the JSON documents the commands print; docs/json.md
// describes them and docs/json.schema.json defines them (a test validates
// every command's real output against it). Bump the number when a field
// changes meaning or goes away; adding a field does not need a bump.
const (
	schemaBoot         = "vmm.boot/1"
	schemaBench        = "vmm.bench/1"
	schemaBenchFloors  = "vmm.bench-floors/2"
	schemaInspect      = "vmm.inspect/1"
	schemaInspectTools = "vmm.inspect-tools/1"
)

// writeJSON prints v as indented JSON. Every nil slice in v is printed as
// [] rather than null, so consumers can iterate any list without a check
// (byte slices, which encode as base64 strings, stay as they are).
func writeJSON(w io.Writer, v any) error {
	rv := reflect.ValueOf(v)
	p := reflect.New(rv.Type())
	p.Elem().Set(rv)
	emptySlices(p.Elem(), 0)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p.Elem().Interface())
}

// maxJSONDepth bounds emptySlices' recursion (our documents are shallow;
// this only guards against a cycle through pointers).
const maxJSONDepth = 32

// emptySlices replaces nil slices reachable from v (through exported
// struct fields, pointers, slices and arrays) with empty ones, in place.
func emptySlices(v reflect.Value, depth int) {
	if depth > maxJSONDepth {
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			emptySlices(v.Elem(), depth+1)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() || v.Type().Field(i).Anonymous {
				emptySlices(f, depth+1)
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		if v.IsNil() {
			if v.CanSet() {
				v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			}
			return
		}
		for i := range v.Len() {
			emptySlices(v.Index(i), depth+1)
		}
	case reflect.Array:
		for i := range v.Len() {
			emptySlices(v.Index(i), depth+1)
		}
	}
}
