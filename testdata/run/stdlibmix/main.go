// Command stdlibmix exercises what most Go programs lean on besides
// goroutines: maps, fmt, encoding/json and reflect, with output that does
// not depend on the machine, so the host run and the guest run must print
// the same bytes.
package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

type Order struct {
	ID    int               `json:"id"`
	Items []string          `json:"items"`
	Price float64           `json:"price"`
	Tags  map[string]string `json:"tags,omitempty"`
	Next  *Order            `json:"next,omitempty"`
}

func main() {
	// A map large enough to grow many times, iterated in sorted order.
	counts := map[string]int{}
	for i := 0; i < 100000; i++ {
		counts[fmt.Sprintf("k%03d", i%997)] += i
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	sum := 0
	for _, k := range keys {
		sum += counts[k]
	}
	fmt.Printf("map: %d keys, first %s=%d, last %s=%d, sum %d\n", len(keys), keys[0], counts[keys[0]], keys[len(keys)-1], counts[keys[len(keys)-1]], sum)

	// encoding/json both ways, nested values, maps with sorted keys.
	in := Order{ID: 7, Items: []string{"a", "b\u00e9", "<c>"}, Price: 12.5,
		Tags: map[string]string{"z": "last", "a": "first"}, Next: &Order{ID: 8, Price: 0.1}}
	b, err := json.Marshal(in)
	if err != nil {
		panic(err)
	}
	fmt.Println("json:", string(b))
	var out Order
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	fmt.Println("round trip equal:", reflect.DeepEqual(in, out))
	var anyv map[string]any
	if err := json.Unmarshal([]byte(`{"n":1e3,"s":["x",true,null],"o":{"k":-2}}`), &anyv); err != nil {
		panic(err)
	}
	fmt.Printf("any: %v\n", anyv)

	// reflect: walk the struct's fields and tags, call a method by name.
	t := reflect.TypeOf(in)
	var fields []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		fields = append(fields, f.Name+":"+f.Type.String()+":"+f.Tag.Get("json"))
	}
	fmt.Println("fields:", strings.Join(fields, " "))
	m := reflect.ValueOf(strings.NewReplacer("a", "A")).MethodByName("Replace")
	fmt.Println("method:", m.Call([]reflect.Value{reflect.ValueOf("banana")})[0])
	fmt.Printf("fmt: %08.3f|%-6s|%x|%q|%+v\n", 3.14159, "go", 255, "tab\t", struct{ A, B int }{1, 2})
}
