// Package strictjson decodes JSON documents that carry trust (the release
// statement, its envelope, the trust policy) so that one document cannot
// be read two ways: encoding/json accepts duplicate keys (the last wins)
// and matches struct fields case-insensitively ("Subject" fills
// "subject"), while other readers of the same bytes may keep the first
// duplicate or ignore the differently cased key. Here a document is
// refused when an object repeats a key, when a key matches a field only
// up to case, when a field is unknown, or when anything follows it.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// MaxDepth bounds nesting: no document augen trusts is deeper than a few
// levels, and the check walks the document recursively.
const MaxDepth = 32

// Decode reads exactly one JSON value from b into v (a pointer to a
// struct), with the rules of the package doc.
func Decode(b []byte, v any) error {
	if err := check(b, reflect.TypeOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// check walks the document's tokens alongside the Go type it will fill.
func check(b []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return value(dec, t, "$", 0)
}

func value(dec *json.Decoder, t reflect.Type, path string, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("%s: nested deeper than %d", path, MaxDepth)
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	switch tok {
	case json.Delim('{'):
		return object(dec, t, path, depth)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := value(dec, elem, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ']'
		return err
	}
	return nil
}

func object(dec *json.Decoder, t reflect.Type, path string, depth int) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = jsonFields(t)
		case reflect.Map:
			elem = t.Elem()
		}
	}
	seen := map[string]bool{}
	folded := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		key := tok.(string)
		if seen[key] {
			return fmt.Errorf("%s: key %q appears twice", path, key)
		}
		seen[key] = true
		if prev, ok := folded[strings.ToLower(key)]; ok {
			return fmt.Errorf("%s: keys %q and %q differ only in case", path, prev, key)
		}
		folded[strings.ToLower(key)] = key
		next := elem
		if fields != nil {
			ft, ok := fields[key]
			if !ok {
				for name := range fields {
					if strings.EqualFold(name, key) {
						return fmt.Errorf("%s: key %q, the field is %q (keys are case-sensitive)", path, key, name)
					}
				}
				return fmt.Errorf("%s: unknown field %q", path, key)
			}
			next = ft
		}
		if err := value(dec, next, path+"."+key, depth+1); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return err
}

// jsonFields maps a struct's JSON names to their types, as encoding/json
// names them (tag name, else the field name; "-" and unexported skipped;
// embedded structs flattened).
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
