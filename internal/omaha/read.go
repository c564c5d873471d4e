package omaha

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/augen-project/augen"
)

// ErrNoUpdate is an answer the client reads as "no update" (updatecheck
// status="noupdate").
var ErrNoUpdate = errors.New("omaha: no update offered")

// MaxDepth bounds the element nesting of an answer (Nebraska's is 7 deep).
const MaxDepth = 64

// Offer is what update_engine reads from an answer that offers an update
// (OmahaRequestAction::ParseResponse): the first updatecheck's status, the
// first manifest's version, every url's codebase, the first package's name
// and size, and the sha256 of the first action whose event is
// "postinstall". These are XPath lookups from the document's root
// (/response/app/updatecheck/...), so they may come from different <app>
// or <updatecheck> elements: the client does not look at app ids or app
// status at all.
type Offer struct {
	Version string
	// URLs are the codebases in document order; the client tries the
	// first one first and the others after a failure.
	URLs []string
	Name string
	// SizeAttr is the size attribute as sent; Size is what the client's
	// sscanf("%" PRIi64) makes of it (base prefixes: "025" is octal 21).
	SizeAttr string
	Size     int64
	SHA256   string // base64, from the postinstall action
	// SHA1 is the first package's hash attribute (update_engine does not
	// check it; Nebraska records it).
	SHA1 string
	// Extra are the packages after the first one in the same <packages>
	// element: extra files (hash_sha256 in hex), which ue-rs installs.
	Extra []Package
}

// Package is one <package> element.
type Package struct {
	Name       string
	Hash       string
	HashSHA256 string
	Size       string
	Required   string
}

// URL is where a client downloads the payload from first (update_engine
// adds the slash a codebase lacks).
func (o *Offer) URL() string { return JoinURL(o.URLs[0], o.Name) }

// node is one element of a parsed answer.
type node struct {
	name     xml.Name
	attrs    []xml.Attr
	children []*node
}

// Read reads an answer, at most MaxResponse bytes of it, as update_engine
// does and returns the offer it makes. An answer the client reads as no
// update is ErrNoUpdate; one the client rejects wraps ErrResponse and says
// what the client stumbles on. Where augen cannot be sure to read the
// document as libxml2 does (a DOCTYPE, which may declare default
// attributes; an encoding other than UTF-8; a line break inside an
// attribute value the client reads, which libxml2 normalises), the answer
// is refused as stricter than the client (doc/push.md).
func Read(r io.Reader) (*Offer, error) {
	raw, err := io.ReadAll(io.LimitReader(r, MaxResponse+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > MaxResponse {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrResponse, MaxResponse)
	}
	root, err := parseTree(raw)
	if err != nil {
		return nil, err
	}
	return readOffer(root)
}

// parseTree builds the element tree, refusing what libxml2 might read
// differently.
func parseTree(raw []byte) (*node, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fmt.Errorf("%w: empty answer", ErrResponse)
	}
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	d.CharsetReader = func(label string, _ io.Reader) (io.Reader, error) {
		return nil, fmt.Errorf("an XML declaration naming the encoding %q (%w)", label, augen.Stricter("omaha-encoding"))
	}
	var root *node
	var stack []*node
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if rule := augen.StricterRule(err); rule != "" {
			return nil, fmt.Errorf("%w: %w", ErrResponse, err)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: not XML the client parses: %w", ErrResponse, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= MaxDepth {
				return nil, fmt.Errorf("%w: elements nested deeper than %d", ErrResponse, MaxDepth)
			}
			n := &node{name: t.Name, attrs: t.Copy().Attr}
			if len(stack) == 0 {
				if root != nil {
					return nil, fmt.Errorf("%w: more than one root element", ErrResponse)
				}
				root = n
			} else {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.Directive:
			return nil, fmt.Errorf("%w: a <!DOCTYPE>, which may declare default attributes libxml2 applies (%w)", ErrResponse, augen.Stricter("omaha-doctype"))
		}
	}
	if root == nil {
		return nil, fmt.Errorf("%w: no root element", ErrResponse)
	}
	return root, nil
}

// selectPath returns the elements on an absolute XPath of plain names, in
// document order. A name test without a prefix matches only elements in
// no namespace, as libxml2's XPath does: <response xmlns="..."> is not
// /response.
func (n *node) selectPath(path ...string) []*node {
	if !n.is(path[0]) {
		return nil
	}
	cur := []*node{n}
	for _, name := range path[1:] {
		var next []*node
		for _, c := range cur {
			for _, ch := range c.children {
				if ch.is(name) {
					next = append(next, ch)
				}
			}
		}
		cur = next
	}
	return cur
}

func (n *node) is(name string) bool { return n.name.Space == "" && n.name.Local == name }

// attr is libxml2's xmlGetProp as update_engine's XmlGetProperty calls it:
// the first attribute of that local name, whatever its namespace; "" when
// there is none.
func (n *node) attr(name string) (string, error) {
	for _, a := range n.attrs {
		if a.Name.Local != name || a.Name.Space == "xmlns" {
			continue
		}
		if strings.ContainsAny(a.Value, "\t\r\n") {
			return "", fmt.Errorf("%w: a tab or line break in the %s attribute, which libxml2 may normalise to a space (%w)", ErrResponse, name, augen.Stricter("omaha-attribute-whitespace"))
		}
		return a.Value, nil
	}
	return "", nil
}

// readOffer is ParseResponse: ParseStatus, ParseManifest, ParseUrls,
// ParsePackage and ParseParams, in that order, each on the first node (or
// all nodes) of its XPath.
func readOffer(root *node) (*Offer, error) {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: the client rejects it (kActionCodeOmahaResponseInvalid): %s", ErrResponse, fmt.Sprintf(format, args...))
	}
	checks := root.selectPath("response", "app", "updatecheck")
	if len(checks) == 0 {
		if root.name.Local == "response" && root.name.Space != "" {
			return nil, invalid("no /response/app/updatecheck: <response> is in namespace %q, and the client's XPath matches only elements in no namespace", root.name.Space)
		}
		return nil, invalid("no /response/app/updatecheck")
	}
	uc := checks[0]
	if !hasAttr(uc, "status") {
		return nil, invalid("the first updatecheck has no status")
	}
	status, err := uc.attr("status")
	if err != nil {
		return nil, err
	}
	switch status {
	case "noupdate":
		return nil, ErrNoUpdate
	case "ok":
	default:
		return nil, invalid("the first updatecheck's status is %q", status)
	}
	o := &Offer{}
	manifests := root.selectPath("response", "app", "updatecheck", "manifest")
	if len(manifests) == 0 {
		return nil, invalid("no manifest")
	}
	if o.Version, err = manifests[0].attr("version"); err != nil {
		return nil, err
	}
	urls := root.selectPath("response", "app", "updatecheck", "urls", "url")
	if len(urls) == 0 {
		return nil, invalid("no url")
	}
	for _, u := range urls {
		cb, err := u.attr("codebase")
		if err != nil {
			return nil, err
		}
		if cb == "" {
			return nil, invalid("a url with an empty codebase")
		}
		o.URLs = append(o.URLs, cb)
	}
	// The first package in the document, found through its parent so that
	// the extra files listed beside it come along.
	var first *node
	var siblings []*node
	for _, ps := range root.selectPath("response", "app", "updatecheck", "manifest", "packages") {
		for i, c := range ps.children {
			if c.is("package") {
				first = c
				for _, s := range ps.children[i+1:] {
					if s.is("package") {
						siblings = append(siblings, s)
					}
				}
				break
			}
		}
		if first != nil {
			break
		}
	}
	if first == nil {
		return nil, invalid("no package")
	}
	if o.Name, err = first.attr("name"); err != nil {
		return nil, err
	}
	if o.Name == "" {
		return nil, invalid("the package has an empty name")
	}
	if o.SizeAttr, err = first.attr("size"); err != nil {
		return nil, err
	}
	if o.Size = ClientInt(o.SizeAttr); o.Size <= 0 {
		return nil, invalid("the package size %q reads as %d", o.SizeAttr, o.Size)
	}
	if o.SHA1, err = first.attr("hash"); err != nil {
		return nil, err
	}
	for _, s := range siblings {
		p, err := readPackage(s)
		if err != nil {
			return nil, err
		}
		o.Extra = append(o.Extra, p)
	}
	actions := root.selectPath("response", "app", "updatecheck", "manifest", "actions", "action")
	if len(actions) == 0 {
		return nil, invalid("no action")
	}
	var pie *node
	for _, a := range actions {
		ev, err := a.attr("event")
		if err != nil {
			return nil, err
		}
		if ev == "postinstall" {
			pie = a
			break
		}
	}
	if pie == nil {
		return nil, invalid("no postinstall action")
	}
	if o.SHA256, err = pie.attr("sha256"); err != nil {
		return nil, err
	}
	if o.SHA256 == "" {
		return nil, invalid("the postinstall action has an empty sha256")
	}
	return o, nil
}

func hasAttr(n *node, name string) bool {
	for _, a := range n.attrs {
		if a.Name.Local == name && a.Name.Space != "xmlns" {
			return true
		}
	}
	return false
}

func readPackage(n *node) (Package, error) {
	var p Package
	for _, f := range []struct {
		name string
		to   *string
	}{{"name", &p.Name}, {"hash", &p.Hash}, {"hash_sha256", &p.HashSHA256}, {"size", &p.Size}, {"required", &p.Required}} {
		v, err := n.attr(f.name)
		if err != nil {
			return Package{}, err
		}
		*f.to = v
	}
	return p, nil
}

// ClientInt is update_engine's ParseInt: sscanf(s, "%" PRIi64) with glibc,
// 0 when no number is read. Leading white space and a sign are taken; "0x"
// starts a hexadecimal number and "0" an octal one; reading stops at the
// first character that is not a digit of the base; a value out of range
// saturates, as glibc's strtol does.
func ClientInt(s string) int64 {
	i := 0
	for i < len(s) && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	base := uint64(10)
	if i < len(s) && s[i] == '0' {
		base = 8
		if i+2 < len(s) && (s[i+1] == 'x' || s[i+1] == 'X') && digit(s[i+2], 16) >= 0 {
			base, i = 16, i+2
		}
	}
	var v uint64
	over := false
	n := 0
	for ; i < len(s); i++ {
		d := digit(s[i], base)
		if d < 0 {
			break
		}
		n++
		if v > (math.MaxUint64-uint64(d))/base {
			over = true
			continue
		}
		v = v*base + uint64(d)
	}
	switch {
	case n == 0:
		return 0
	case neg && (over || v > 1<<63):
		return math.MinInt64
	case neg:
		return -int64(v)
	case over || v > math.MaxInt64:
		return math.MaxInt64
	}
	return int64(v)
}

func digit(c byte, base uint64) int {
	var d int
	switch {
	case c >= '0' && c <= '9':
		d = int(c - '0')
	case c >= 'a' && c <= 'f':
		d = int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		d = int(c-'A') + 10
	default:
		return -1
	}
	if uint64(d) >= base {
		return -1
	}
	return d
}
