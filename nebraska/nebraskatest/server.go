// Package nebraskatest is an in-memory Nebraska server for tests. It
// reproduces what a real Nebraska 3.x server was recorded doing
// (testdata/transcripts, described in its README.md), odd parts included:
// empty lists as null, a 400 with a JSON message for schema errors but a
// 500 with an empty body for everything the handler refuses (a duplicate
// version, a bad semver, an arch mismatch), a channel PUT that replaces the
// channel (no package_id unpublishes it), searchVersion as a substring
// match, an Omaha answer with explicit end tags, and 200 with an empty
// body for a missing file under /flatcar/.
//
// It starts from the recorded seed data (the Flatcar app with its
// alpha/beta/stable/edge channels and groups). IDs and clock are
// injectable so that a replay of the recordings compares byte for byte.
package nebraskatest

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/augen-project/augen/internal/omaha"
	"github.com/augen-project/augen/nebraska"
)

//go:embed testdata/transcripts/01-get-app.body
var seedApp []byte

// Logged is one request the server received.
type Logged struct {
	Method, Path, Query string
	// Authorization is the header as received (tests check tokens go
	// where they should and nowhere else).
	Authorization string
}

// Server is the test server's state. Set the exported fields before the
// first request.
type Server struct {
	// NewID makes object ids (random UUIDs by default).
	NewID func() string
	// Now is the clock (time.Now by default).
	Now func() time.Time
	// Token, if set, is the admin bearer token every /api request needs
	// (401 without one, 403 with another). ViewerToken may only read.
	Token, ViewerToken string
	// PackagesDir is served at /flatcar/ like -host-flatcar-packages.
	PackagesDir string
	// URL is the server's base URL once started with Start.
	URL string

	mu       sync.Mutex
	app      nebraska.App
	channels []*nebraska.Channel
	groups   []*nebraska.Group
	packages []*nebraska.Package
	extraID  int
	log      []Logged
	down     bool
	failOn   func(method, path string) bool
	srv      *httptest.Server
}

// New makes a server holding the recorded seed data.
func New() *Server {
	s := &Server{}
	if err := json.Unmarshal(seedApp, &s.app); err != nil {
		panic(err)
	}
	seen := map[string]bool{}
	for i := range s.app.Channels {
		ch := s.app.Channels[i]
		if ch.Package != nil && !seen[ch.Package.ID] {
			seen[ch.Package.ID] = true
			p := *ch.Package
			s.packages = append(s.packages, &p)
		}
		ch.Package = nil
		s.channels = append(s.channels, &ch)
	}
	for i := range s.app.Groups {
		g := s.app.Groups[i]
		g.Channel = nil
		s.groups = append(s.groups, &g)
	}
	s.app.Channels, s.app.Groups = nil, nil
	return s
}

// Start serves on 127.0.0.1 until the test ends.
func Start(t interface {
	Helper()
	Cleanup(func())
}) *Server {
	t.Helper()
	s := New()
	s.srv = httptest.NewServer(s)
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Log is every request received so far.
func (s *Server) Log() []Logged {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Logged(nil), s.log...)
}

// SetDown makes the server drop every connection (as if killed) until
// SetDown(false).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// KillOn makes the server go down when a request matches (nil: never).
func (s *Server) KillOn(match func(method, path string) bool) {
	s.mu.Lock()
	s.failOn = match
	s.mu.Unlock()
}

func (s *Server) id() string {
	if s.NewID != nil {
		return s.NewID()
	}
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func (s *Server) now() string {
	t := time.Now()
	if s.Now != nil {
		t = s.Now()
	}
	return t.UTC().Round(time.Microsecond).Format(time.RFC3339Nano)
}

func requestID() string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var b [32]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b[:])
}

// ServeHTTP routes like Nebraska's echo server.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failOn != nil && s.failOn(r.Method, r.URL.Path) {
		s.down = true
	}
	if s.down {
		hj, ok := w.(http.Hijacker)
		if ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	s.log = append(s.log, Logged{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Authorization: r.Header.Get("Authorization")})
	w.Header().Set("Vary", "Origin")
	w.Header().Set("X-Request-Id", requestID())
	p := r.URL.Path
	switch {
	case p == "/health" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		io.WriteString(w, "OK")
	case p == "/config" && r.Method == http.MethodGet:
		w.Header().Add("Vary", "Accept-Encoding")
		writeJSON(w, 200, map[string]any{"auth_mode": s.authMode(), "nebraska_version": "0.1.0+git"})
	case p == "/v1/update" || p == "/v1/update/":
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		s.omaha(w, r)
	case strings.HasPrefix(p, "/flatcar/"):
		s.serveFile(w, r)
	case strings.HasPrefix(p, "/api/"):
		w.Header().Add("Vary", "Accept-Encoding")
		if !s.authorized(w, r) {
			return
		}
		s.api(w, r)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (s *Server) authMode() string {
	if s.Token != "" {
		return "oidc"
	}
	return "noop"
}

// authorized checks the bearer token. The bodies of these answers were not
// recorded; the statuses were (section 1.2 of the API notes).
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.Token == "" {
		return true
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case ok && tok == s.Token:
		return true
	case ok && s.ViewerToken != "" && tok == s.ViewerToken:
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			return true
		}
		w.WriteHeader(http.StatusForbidden)
	case ok && tok != "":
		w.WriteHeader(http.StatusForbidden)
	default:
		w.WriteHeader(http.StatusUnauthorized)
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) // echo's c.JSON: one trailing newline
}

// fail500 is what Nebraska answers when a handler fails after validation.
func fail500(w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) }

// bad400 is an OpenAPI validation failure.
func bad400(w http.ResponseWriter, schema, msg string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"message": "request body has an error: doesn't match schema #/components/schemas/" + schema + ": " + msg})
}

var (
	reAppPath   = regexp.MustCompile(`^/api/apps/([^/]+)(/(channels|packages|groups)(/([^/]+))?)?$`)
	reSemver    = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
	packageReqd = []string{"application_id", "arch", "channels_blacklist", "description", "filename", "hash", "size", "type", "url", "version"}
	packageType = map[string]string{"application_id": "string", "arch": "integer", "channels_blacklist": "array", "description": "string", "filename": "string",
		"hash": "string", "size": "string", "type": "integer", "url": "string", "version": "string", "flatcar_action": "object", "extra_files": "array"}
	channelReqd = []string{"application_id", "arch", "color", "name"}
	channelType = map[string]string{"application_id": "string", "arch": "integer", "color": "string", "name": "string", "package_id": "string"}
	groupReqd   = []string{"name", "policy_max_updates_per_period", "policy_office_hours", "policy_period_interval", "policy_safe_mode", "policy_timezone", "policy_update_timeout", "policy_updates_enabled"}
	groupType   = map[string]string{"name": "string", "description": "string", "channel_id": "string", "track": "string", "policy_updates_enabled": "boolean",
		"policy_safe_mode": "boolean", "policy_office_hours": "boolean", "policy_timezone": "string", "policy_period_interval": "string",
		"policy_max_updates_per_period": "integer", "policy_update_timeout": "string"}
)

// validate does what the OpenAPI middleware does before any handler: a
// JSON Content-Type, the required properties, the JSON types.
func validate(w http.ResponseWriter, r *http.Request, schema string, required []string, types map[string]string, out any) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"message": fmt.Sprintf("header Content-Type has unexpected value: %q", r.Header.Get("Content-Type"))})
		return false
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		bad400(w, schema, "value must be an object")
		return false
	}
	for _, k := range required {
		if _, ok := m[k]; !ok {
			bad400(w, schema, fmt.Sprintf("Error at %q: property %q is missing", "/"+k, k))
			return false
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		want, ok := types[k]
		if !ok {
			continue
		}
		if got := jsonType(m[k]); got != want && !(got == "null" && !contains(required, k)) {
			bad400(w, schema, fmt.Sprintf("Error at %q: value must be %s", "/"+k, article(want)))
			return false
		}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		bad400(w, schema, err.Error())
		return false
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func article(t string) string {
	if t == "integer" || t == "object" || t == "array" {
		return "an " + t
	}
	return "a " + t
}

func jsonType(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return ""
	}
	switch v[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	if bytes.ContainsAny(v, ".eE") {
		return "number"
	}
	return "integer"
}

func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	m := reAppPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
		return
	}
	if m[1] != s.app.ID && (s.app.ProductID == nil || m[1] != *s.app.ProductID) {
		fail500(w)
		return
	}
	kind, id := m[3], m[5]
	switch {
	case kind == "" && r.Method == http.MethodGet:
		writeJSON(w, 200, s.renderApp())
	case kind == "channels" && id == "" && r.Method == http.MethodGet:
		var out []nebraska.Channel
		for _, ch := range s.sortedChannels() {
			out = append(out, s.renderChannel(ch))
		}
		writeList(w, r, "channels", out)
	case kind == "channels" && id == "" && r.Method == http.MethodPost:
		s.createChannel(w, r)
	case kind == "channels" && r.Method == http.MethodGet:
		ch := s.channel(id)
		if ch == nil {
			fail500(w)
			return
		}
		writeJSON(w, 200, s.renderChannel(ch))
	case kind == "channels" && r.Method == http.MethodPut:
		s.putChannel(w, r, id)
	case kind == "packages" && id == "" && r.Method == http.MethodGet:
		q := strings.ToLower(r.URL.Query().Get("searchVersion"))
		var out []nebraska.Package
		for _, p := range s.sortedPackages() {
			if strings.Contains(strings.ToLower(p.Version), q) {
				out = append(out, *p)
			}
		}
		writeList(w, r, "packages", out)
	case kind == "packages" && id == "" && r.Method == http.MethodPost:
		s.createPackage(w, r)
	case kind == "packages" && r.Method == http.MethodGet:
		p := s.pkg(id)
		if p == nil {
			fail500(w)
			return
		}
		writeJSON(w, 200, p)
	case kind == "groups" && id == "" && r.Method == http.MethodGet:
		var out []nebraska.Group
		for _, g := range s.sortedGroups() {
			out = append(out, s.renderGroup(g))
		}
		writeList(w, r, "groups", out)
	case kind == "groups" && id == "" && r.Method == http.MethodPost:
		s.createGroup(w, r)
	default:
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"message": "Method Not Allowed"})
	}
}

// writeList pages a list (1-based, perpage default 10) in Nebraska's
// envelope, with an empty page as null.
func writeList[T any](w http.ResponseWriter, r *http.Request, key string, all []T) {
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	per, _ := strconv.Atoi(r.URL.Query().Get("perpage"))
	if page < 1 {
		page = 1
	}
	if per < 1 {
		per = 10
	}
	lo := min((page-1)*per, len(all))
	hi := min(lo+per, len(all))
	items := all[lo:hi]
	if len(items) == 0 {
		items = nil
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"totalCount":%d,"count":%d,%q:`, len(all), len(items), key)
	enc, _ := json.Marshal(items)
	b.Write(enc)
	b.WriteString("}\n")
	w.Header().Set("Content-Type", "application/json")
	w.Write(b.Bytes())
}

func (s *Server) renderApp() nebraska.App {
	a := s.app
	a.Groups, a.Channels = []nebraska.Group{}, []nebraska.Channel{}
	for _, g := range s.sortedGroups() {
		a.Groups = append(a.Groups, s.renderGroup(g))
	}
	for _, ch := range s.sortedChannels() {
		a.Channels = append(a.Channels, s.renderChannel(ch))
	}
	return a
}

func (s *Server) renderChannel(ch *nebraska.Channel) nebraska.Channel {
	c := *ch
	if c.PackageID != nil {
		c.Package = s.pkg(*c.PackageID)
	}
	return c
}

func (s *Server) renderGroup(g *nebraska.Group) nebraska.Group {
	gg := *g
	if gg.ChannelID != nil {
		if ch := s.channel(*gg.ChannelID); ch != nil {
			c := s.renderChannel(ch)
			gg.Channel = &c
		}
	}
	return gg
}

// Nebraska orders channels by name, groups and packages newest first; ties
// keep the seed's order.
func (s *Server) sortedChannels() []*nebraska.Channel {
	out := append([]*nebraska.Channel(nil), s.channels...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *Server) sortedGroups() []*nebraska.Group {
	out := append([]*nebraska.Group(nil), s.groups...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedTS > out[j].CreatedTS })
	return out
}

func (s *Server) sortedPackages() []*nebraska.Package {
	out := append([]*nebraska.Package(nil), s.packages...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedTS > out[j].CreatedTS })
	return out
}

func (s *Server) channel(id string) *nebraska.Channel {
	for _, ch := range s.channels {
		if ch.ID == id {
			return ch
		}
	}
	return nil
}

func (s *Server) pkg(id string) *nebraska.Package {
	for _, p := range s.packages {
		if p.ID == id {
			c := *p
			return &c
		}
	}
	return nil
}

func (s *Server) createPackage(w http.ResponseWriter, r *http.Request) {
	var in nebraska.PackageConfig
	if !validate(w, r, "packageConfig", packageReqd, packageType, &in) {
		return
	}
	switch {
	case in.ApplicationID != s.app.ID, !reSemver.MatchString(in.Version), len(in.URL) > 256, len(in.Filename) > 100,
		len(in.Size) > 20, len(in.Hash) > 64, in.FlatcarAction != nil && len(in.FlatcarAction.SHA256) > 64:
		fail500(w)
		return
	}
	for _, p := range s.packages {
		if p.Version == in.Version && p.Arch == in.Arch {
			fail500(w) // package_appid_version_arch_unique
			return
		}
	}
	ts := s.now()
	p := &nebraska.Package{ID: s.id(), Type: in.Type, Version: in.Version, URL: in.URL, Filename: in.Filename, Description: in.Description,
		Size: in.Size, Hash: in.Hash, CreatedTS: ts, ApplicationID: in.ApplicationID, Arch: in.Arch}
	if len(in.ChannelsBlacklist) > 0 {
		p.ChannelsBlacklist = in.ChannelsBlacklist
	}
	if in.FlatcarAction != nil {
		p.FlatcarAction = &nebraska.FlatcarAction{ID: s.id(), Event: "postinstall", SHA256: in.FlatcarAction.SHA256, DisablePayloadBackoff: true, CreatedTS: ts}
	}
	for _, f := range in.ExtraFiles {
		s.extraID++
		p.ExtraFiles = append(p.ExtraFiles, nebraska.ExtraFile{ID: s.extraID, PackageID: p.ID, Name: f.Name, Size: f.Size, Hash: f.Hash, Hash256: f.Hash256, CreatedTS: ts})
	}
	s.packages = append(s.packages, p)
	writeJSON(w, 200, p)
}

func (s *Server) createChannel(w http.ResponseWriter, r *http.Request) {
	var in nebraska.ChannelConfig
	if !validate(w, r, "channelConfig", channelReqd, channelType, &in) {
		return
	}
	if len(in.Name) > 25 || in.ApplicationID != s.app.ID {
		fail500(w)
		return
	}
	for _, ch := range s.channels {
		if ch.Name == in.Name && ch.Arch == in.Arch {
			fail500(w)
			return
		}
	}
	ch := &nebraska.Channel{ID: s.id(), Name: in.Name, Color: in.Color, CreatedTS: s.now(), ApplicationID: in.ApplicationID, Arch: in.Arch}
	if !s.setPackage(ch, in.PackageID) {
		fail500(w)
		return
	}
	s.channels = append(s.channels, ch)
	writeJSON(w, 200, s.renderChannel(ch))
}

// putChannel replaces name, color and package_id; arch cannot change.
func (s *Server) putChannel(w http.ResponseWriter, r *http.Request, id string) {
	var in nebraska.ChannelConfig
	if !validate(w, r, "channelConfig", channelReqd, channelType, &in) {
		return
	}
	ch := s.channel(id)
	if ch == nil || len(in.Name) > 25 {
		fail500(w)
		return
	}
	next := *ch
	next.Name, next.Color = in.Name, in.Color
	if !s.setPackage(&next, in.PackageID) {
		fail500(w)
		return
	}
	*ch = next
	writeJSON(w, 200, s.renderChannel(ch))
}

// setPackage points ch at id (nil unpublishes): the package must exist,
// have the channel's arch and not blacklist it.
func (s *Server) setPackage(ch *nebraska.Channel, id *string) bool {
	if id == nil {
		ch.PackageID = nil
		return true
	}
	p := s.pkg(*id)
	if p == nil || p.Arch != ch.Arch || contains(p.ChannelsBlacklist, ch.ID) {
		return false
	}
	v := *id
	ch.PackageID = &v
	return true
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) {
	var in nebraska.GroupConfig
	if !validate(w, r, "groupConfig", groupReqd, groupType, &in) {
		return
	}
	g := &nebraska.Group{ID: s.id(), Name: in.Name, Description: in.Description, CreatedTS: s.now(), ApplicationID: s.app.ID,
		PolicyUpdatesEnabled: in.PolicyUpdatesEnabled, PolicySafeMode: in.PolicySafeMode, PolicyOfficeHours: in.PolicyOfficeHours,
		PolicyTimezone: in.PolicyTimezone, PolicyPeriodInterval: in.PolicyPeriodInterval, PolicyMaxUpdatesPerPeriod: in.PolicyMaxUpdatesPerPeriod,
		PolicyUpdateTimeout: in.PolicyUpdateTimeout, Track: in.Track}
	if in.ChannelID != "" {
		if s.channel(in.ChannelID) == nil {
			fail500(w)
			return
		}
		c := in.ChannelID
		g.ChannelID = &c
	}
	if g.Track == "" {
		g.Track = g.ID
	}
	s.groups = append(s.groups, g)
	writeJSON(w, 200, s.renderGroup(g))
}

// serveFile is -host-flatcar-packages: GET only (HEAD is 405), ranges
// work, and a missing file is 200 with an empty body.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if s.PackagesDir == "" {
		w.WriteHeader(http.StatusOK)
		return
	}
	name := filepath.Join(s.PackagesDir, filepath.FromSlash(path.Clean(strings.TrimPrefix(r.URL.Path, "/flatcar/"))))
	f, err := os.Open(name)
	if err != nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		w.WriteHeader(http.StatusOK)
		return
	}
	http.ServeContent(w, r, "", st.ModTime(), f)
}

type omahaRequest struct {
	Apps []struct {
		AppID       string     `xml:"appid,attr"`
		Version     string     `xml:"version,attr"`
		Track       string     `xml:"track,attr"`
		Board       string     `xml:"board,attr"`
		Ping        *struct{}  `xml:"ping"`
		UpdateCheck *struct{}  `xml:"updatecheck"`
		Events      []struct{} `xml:"event"`
	} `xml:"app"`
}

// omaha answers an update check the way Nebraska's omaha package writes it.
func (s *Server) omaha(w http.ResponseWriter, r *http.Request) {
	var req omahaRequest
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err := xml.Unmarshal(raw, &req); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<response protocol="3.0" server="nebraska"><daystart elapsed_seconds="0"></daystart>`)
	for _, a := range req.Apps {
		appOK := strings.EqualFold(strings.Trim(a.AppID, "{}"), s.app.ID)
		status := "ok"
		if !appOK {
			status = "error-unknownApplication"
		}
		fmt.Fprintf(&b, `<app appid="%s" status="%s">`, omaha.Attr(a.AppID), status)
		if appOK {
			if a.Ping != nil {
				b.WriteString(`<ping status="ok"></ping>`)
			}
			if a.UpdateCheck != nil {
				b.WriteString(s.updateCheck(a.Version, a.Track, a.Board))
			}
			for range a.Events {
				b.WriteString(`<event status="ok"></event>`)
			}
		}
		b.WriteString(`</app>`)
	}
	b.WriteString(`</response>`)
	w.Header().Set("Content-Type", "text/xml")
	io.WriteString(w, b.String())
}

func (s *Server) updateCheck(version, track, board string) string {
	arch := nebraska.ArchAMD64
	if board == "arm64-usr" {
		arch = nebraska.ArchARM64
	}
	var ch *nebraska.Channel
	var grp *nebraska.Group
	for _, g := range s.groups {
		if g.Track == track && g.ChannelID != nil {
			if c := s.channel(*g.ChannelID); c != nil && c.Arch == arch {
				ch, grp = c, g
			}
		}
	}
	if ch == nil {
		return `<updatecheck status="error-failedToRetrieveUpdatePackageInfo"></updatecheck>`
	}
	if ch.PackageID == nil || !grp.PolicyUpdatesEnabled {
		return `<updatecheck status="noupdate"></updatecheck>`
	}
	p := s.pkg(*ch.PackageID)
	if p.FlatcarAction == nil {
		return `<updatecheck status="error-internal"></updatecheck>`
	}
	if !semverLess(version, p.Version) {
		return `<updatecheck status="noupdate"></updatecheck>`
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<updatecheck status="ok"><urls><url codebase="%s"></url></urls><manifest version="%s"><packages>`, omaha.Attr(p.URL), omaha.Attr(p.Version))
	fmt.Fprintf(&b, `<package name="%s" hash="%s" size="%s" required="true"></package>`, omaha.Attr(p.Filename), omaha.Attr(p.Hash), omaha.Attr(p.Size))
	for _, f := range p.ExtraFiles {
		fmt.Fprintf(&b, `<package name="%s" hash="%s" hash_sha256="%s" size="%s" required="false"></package>`, omaha.Attr(f.Name), omaha.Attr(f.Hash), omaha.Attr(f.Hash256), omaha.Attr(f.Size))
	}
	fmt.Fprintf(&b, `</packages><actions><action event="postinstall" sha256="%s" DisablePayloadBackoff="true"></action></actions></manifest></updatecheck>`, omaha.Attr(p.FlatcarAction.SHA256))
	return b.String()
}

// semverLess compares major.minor.patch numerically (pre-release tags
// sort before the release).
func semverLess(a, b string) bool {
	pa, pb := semverParts(a), semverParts(b)
	for i := 0; i < 3; i++ {
		if pa[i] != pb[i] {
			return pa[i] < pb[i]
		}
	}
	return strings.Contains(a, "-") && !strings.Contains(b, "-")
}

func semverParts(v string) [3]int {
	v, _, _ = strings.Cut(v, "+")
	v, _, _ = strings.Cut(v, "-")
	var out [3]int
	for i, f := range strings.SplitN(v, ".", 3) {
		out[i], _ = strconv.Atoi(f)
	}
	return out
}
