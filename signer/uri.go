package signer

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// attrs holds a key URI's attributes after percent-decoding. RFC 7512 puts
// path attributes after "pkcs11:" separated by ';' and query attributes
// after '?' separated by '&'; tpm: URIs use path attributes only.
type attrs struct {
	scheme string
	path   map[string]string
	query  map[string]string
}

// parseAttrs parses SCHEME:a=1;b=2?c=3&d=4, rejecting attributes not in the
// allowed lists and attributes given twice: a misspelled attribute must not
// silently widen which key matches.
func parseAttrs(uri string, pathKeys, queryKeys []string) (*attrs, error) {
	scheme, rest, ok := strings.Cut(uri, ":")
	if !ok {
		return nil, fmt.Errorf("%w %q: expected SCHEME:…", ErrUnsupported, Redact(uri))
	}
	a := &attrs{scheme: scheme, path: map[string]string{}, query: map[string]string{}}
	pathPart, queryPart, _ := strings.Cut(rest, "?")
	parse := func(part, sep string, into map[string]string, allowed []string) error {
		if part == "" {
			return nil
		}
		for _, kv := range strings.Split(part, sep) {
			if kv == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("attribute %q has no value", k)
			}
			dv, err := url.PathUnescape(v)
			if err != nil {
				return fmt.Errorf("attribute %s: %v", k, err)
			}
			if !contains(allowed, k) {
				sort.Strings(allowed)
				return fmt.Errorf("unknown attribute %q (known: %s)", k, strings.Join(allowed, ", "))
			}
			if _, dup := into[k]; dup {
				return fmt.Errorf("attribute %s given twice", k)
			}
			into[k] = dv
		}
		return nil
	}
	if err := parse(pathPart, ";", a.path, pathKeys); err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrUnsupported, Redact(uri), err)
	}
	if err := parse(queryPart, "&", a.query, queryKeys); err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrUnsupported, Redact(uri), err)
	}
	return a, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Redact removes secrets (pin-value) from a key URI so that it can be
// printed, logged or put in an error.
func Redact(uri string) string {
	i := strings.Index(uri, "pin-value=")
	if i < 0 {
		return uri
	}
	end := strings.IndexAny(uri[i:], "&;")
	if end < 0 {
		return uri[:i] + "pin-value=REDACTED"
	}
	return uri[:i] + "pin-value=REDACTED" + Redact(uri[i+end:])
}
