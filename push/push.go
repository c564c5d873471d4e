// Package push publishes a verified release bundle to an update service:
// it verifies the bundle exactly as `augen verify` does, uploads every
// payload to a store, checks each upload by downloading it back from the
// URL clients use, registers the package with Nebraska (idempotently),
// points a channel at it, and asks the service, as a client would, what it
// now offers. Nothing changes on the server until every file it will
// point clients at has been proven to be served byte for byte.
package push

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/augen-project/augen"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/omaha"
	"github.com/augen-project/augen/nebraska"
	"github.com/augen-project/augen/store"
	"github.com/augen-project/augen/verify"
)

// ErrRefused is wrapped when the server already holds something that
// contradicts the bundle (the same version with other contents), or the
// store serves other bytes than were uploaded.
var ErrRefused = errors.New("push refused")

// Options say what to push where. Bundle, Channel, Client and Store are
// required.
type Options struct {
	// Bundle is the bundle to publish, as verify.Bundle returned it,
	// verified with Channel as the channel (the policy's channel rules).
	// Its members are uploaded from the verified bytes and checked again
	// as they are read.
	Bundle *verify.Verified
	// Name names the bundle in log lines (its path).
	Name    string
	Channel string
	// Track is the GROUP= clients use (default: the channel's name).
	Track  string
	AppID  string // default nebraska.FlatcarAppID
	Client *nebraska.Client
	Store  store.Store
	// PublicURL is the client-facing base URL of the store (default: the
	// store's own URL, for https and s3 stores).
	PublicURL string
	// Fetch downloads files back (default: a plain client).
	Fetch *http.Client
	// DryRun reads and changes nothing anywhere.
	DryRun bool
	// Log receives one line per step ("upload: …", "channel: …") and
	// warnings.
	Log augen.Log
	// Progress, if set, is called as uploads go ("uploading NAME").
	Progress augen.Progress
}

// Record is what a push did, for --json.
type Record struct {
	DryRun        bool         `json:"dry_run"`
	Server        string       `json:"server"`
	ServerVersion string       `json:"server_version,omitempty"`
	Store         string       `json:"store"`
	AppID         string       `json:"app_id"`
	Version       string       `json:"version"`
	Board         string       `json:"board"`
	BundleSigners []string     `json:"bundle_signers"`
	Files         []FileRecord `json:"files"`
	Package       PkgRecord    `json:"package"`
	Channel       ChanRecord   `json:"channel"`
	Probe         *ProbeRecord `json:"probe,omitempty"`
	Warnings      []string     `json:"warnings"`
}

// FileRecord is one uploaded file.
type FileRecord struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	URL    string `json:"url"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256_hex"`
	// Action is "uploaded", "present" (already served, identical) or, in a
	// dry run, "would upload".
	Action string `json:"action"`
}

// PkgRecord is the package registered.
type PkgRecord struct {
	ID string `json:"id,omitempty"`
	// Action is "created", "reused" or "would create".
	Action string `json:"action"`
}

// ChanRecord is the channel pointed.
type ChanRecord struct {
	Name         string `json:"name"`
	ID           string `json:"id"`
	OldPackageID string `json:"old_package_id,omitempty"`
	OldVersion   string `json:"old_version,omitempty"`
	// Action is "pointed", "unchanged" or "would point".
	Action string `json:"action"`
}

// ProbeRecord is what an update check was offered.
type ProbeRecord struct {
	Track   string `json:"track"`
	Version string `json:"version"`
	URL     string `json:"url"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256_base64"`
	Extra   int    `json:"extra_files"`
}

type file struct {
	entry bundle.PayloadEntry
	key   string
	url   string
}

// Push runs the whole push. On error the record holds what was done
// before it.
func Push(ctx context.Context, o Options) (*Record, error) {
	if o.AppID == "" {
		o.AppID = nebraska.FlatcarAppID
	}
	if o.Track == "" {
		o.Track = o.Channel
	}
	if o.Fetch == nil {
		o.Fetch = http.DefaultClient
	}
	if o.Log == nil {
		o.Log = func(string) {}
	}
	rec := &Record{DryRun: o.DryRun, Server: o.Client.URL(), Store: o.Store.String(), AppID: o.AppID, Files: []FileRecord{}, Warnings: []string{}}
	warn := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		rec.Warnings = append(rec.Warnings, msg)
		o.Log("warning: " + msg)
	}

	// 1. The bundle was verified, as augen verify does, with the channel
	// the policy must allow.
	rep, files, err := verifiedFiles(o)
	if err != nil {
		return rec, err
	}
	st := rep.Statement.Predicate
	rec.Version, rec.Board, rec.BundleSigners = st.Version, st.Board, rep.BundleSigners
	if st.AppID != "" && !strings.EqualFold(st.AppID, o.AppID) {
		return rec, fmt.Errorf("%w: the bundle is for app %s, the push for %s", ErrRefused, st.AppID, o.AppID)
	}
	o.Log("verify: " + fmt.Sprintf("%s %s %s: OK, %d payload(s), signed by %d trusted key(s), allowed on %s", o.Name, st.Board, st.Version, len(rep.Payloads), len(rep.BundleSigners), o.Channel))
	arch := nebraska.ArchForBoard(st.Board)
	if arch == 0 {
		return rec, fmt.Errorf("board %q has no Nebraska arch", st.Board)
	}
	public := o.PublicURL
	if public == "" {
		public = o.Store.PublicURL()
	}
	if public == "" {
		return rec, fmt.Errorf("the store %s has no URL of its own: give --public-url (the base URL clients download from)", o.Store)
	}
	if err := CheckPublicURL(public); err != nil {
		return rec, err
	}
	var main *file
	for i := range files {
		files[i].key = st.Board + "/" + st.Version + "/" + files[i].entry.Name
		files[i].url = omaha.JoinURL(public, files[i].key)
		if files[i].entry.Kind == bundle.KindFull {
			main = &files[i]
		}
	}
	if main == nil {
		return rec, fmt.Errorf("%w: the bundle has no full payload to publish", ErrRefused)
	}

	// 2. Find the channel and what routes clients to it, before uploading.
	if cfg, err := o.Client.Config(ctx); err == nil {
		rec.ServerVersion, _ = cfg["nebraska_version"].(string)
		mode, _ := cfg["auth_mode"].(string)
		o.Log("server: " + fmt.Sprintf("%s: Nebraska %s, auth %s", o.Client.URL(), orNone(rec.ServerVersion), orNone(mode)))
	}
	ch, err := o.Client.FindChannel(ctx, o.AppID, o.Channel, arch)
	if err != nil {
		return rec, fmt.Errorf("channel %s: %w", o.Channel, err)
	}
	if ch == nil {
		return rec, fmt.Errorf("channel %q (arch %d) does not exist on %s; creating channels and groups is an admin's one-time setup", o.Channel, arch, o.Client.URL())
	}
	rec.Channel = ChanRecord{Name: ch.Name, ID: ch.ID}
	probeOK, err := checkGroups(ctx, o, ch, warn)
	if err != nil {
		return rec, err
	}

	// 3. Upload, then prove each file is served byte for byte.
	for i := range files {
		fr, err := upload(ctx, o, &files[i])
		if fr != nil {
			rec.Files = append(rec.Files, *fr)
		}
		if err != nil {
			return rec, err
		}
	}

	// 4. Register the package, or reuse the identical one.
	want := packageConfig(o.AppID, arch, st.Version, public, files, main)
	pkg, err := o.Client.FindPackage(ctx, o.AppID, st.Version, arch)
	if err != nil {
		return rec, fmt.Errorf("looking up package %s: %w", st.Version, err)
	}
	switch {
	case pkg != nil:
		if diff := differences(pkg, want); len(diff) > 0 {
			return rec, fmt.Errorf("%w: package %s (arch %d) exists on the server (id %s) and differs from this bundle: %s; a published version is immutable, release a new version", ErrRefused, st.Version, arch, pkg.ID, strings.Join(diff, "; "))
		}
		rec.Package = PkgRecord{ID: pkg.ID, Action: "reused"}
		o.Log("package: " + fmt.Sprintf("%s (arch %d) is registered already, identical: %s", st.Version, arch, pkg.ID))
	case o.DryRun:
		rec.Package = PkgRecord{Action: "would create"}
		o.Log("package: " + fmt.Sprintf("would create %s (arch %d): %s, %d extra file(s)", st.Version, arch, want.URL+want.Filename, len(want.ExtraFiles)))
	default:
		pkg, err = o.Client.CreatePackage(ctx, o.AppID, want)
		if err != nil {
			// A 500 may be a concurrent push of the same version: look again.
			if again, ferr := o.Client.FindPackage(ctx, o.AppID, st.Version, arch); ferr == nil && again != nil && len(differences(again, want)) == 0 {
				pkg, err = again, nil
			}
		}
		if err != nil {
			return rec, fmt.Errorf("creating package %s: %w", st.Version, err)
		}
		rec.Package = PkgRecord{ID: pkg.ID, Action: "created"}
		o.Log("package: " + fmt.Sprintf("created %s (arch %d): %s", st.Version, arch, pkg.ID))
	}

	// 5. Point the channel: GET, PUT the same object with the package, GET.
	cur, err := o.Client.Channel(ctx, o.AppID, ch.ID)
	if err != nil {
		return rec, fmt.Errorf("channel %s: %w", o.Channel, err)
	}
	if cur.PackageID != nil {
		rec.Channel.OldPackageID = *cur.PackageID
		if cur.Package != nil {
			rec.Channel.OldVersion = cur.Package.Version
		}
	}
	switch {
	case pkg != nil && cur.PackageID != nil && *cur.PackageID == pkg.ID:
		rec.Channel.Action = "unchanged"
		o.Log("channel: " + fmt.Sprintf("%s already serves %s", o.Channel, st.Version))
	default:
		if rec.Channel.OldVersion != "" && versionLess(st.Version, rec.Channel.OldVersion) {
			warn("%s served %s, newer than %s: clients do not downgrade; to roll back, publish a higher version", o.Channel, rec.Channel.OldVersion, st.Version)
		}
		if o.DryRun {
			rec.Channel.Action = "would point"
			o.Log("channel: " + fmt.Sprintf("would point %s from %s to %s", o.Channel, orNone(rec.Channel.OldVersion), st.Version))
			break
		}
		id := pkg.ID
		if _, err := o.Client.PutChannel(ctx, o.AppID, ch.ID, nebraska.ChannelConfig{Name: cur.Name, Color: cur.Color, Arch: cur.Arch, ApplicationID: o.AppID, PackageID: &id}); err != nil {
			return rec, fmt.Errorf("pointing %s at %s: %w", o.Channel, st.Version, err)
		}
		after, err := o.Client.Channel(ctx, o.AppID, ch.ID)
		if err != nil {
			return rec, fmt.Errorf("re-reading %s: %w", o.Channel, err)
		}
		if after.PackageID == nil || *after.PackageID != id {
			return rec, fmt.Errorf("%s does not serve package %s after the update (another push at the same time?)", o.Channel, id)
		}
		rec.Channel.Action = "pointed"
		o.Log("channel: " + fmt.Sprintf("%s now serves %s (was %s)", o.Channel, st.Version, orNone(rec.Channel.OldVersion)))
	}

	// 6. Ask as a client would.
	if o.DryRun || !probeOK {
		return rec, nil
	}
	pr, err := probe(ctx, o, st, files, main)
	rec.Probe = pr
	if err != nil {
		return rec, err
	}
	o.Log("probe: " + fmt.Sprintf("a %s client on track %s is offered %s, %d bytes, sha256 %s, %d extra file(s): as pushed", st.Board, o.Track, pr.URL, pr.Size, pr.SHA256, pr.Extra))
	return rec, nil
}

func orNone(v string) string {
	if v == "" {
		return "nothing"
	}
	return v
}

// CheckPublicURL refuses a client-facing base URL that is not http(s) or
// that carries credentials: it is registered in the update service and
// served to every client, so a password in it would be published. The
// error shows the URL redacted.
func CheckPublicURL(public string) error {
	pu, err := url.Parse(public)
	if err == nil && pu.User == nil && (pu.Scheme == "http" || pu.Scheme == "https") && pu.Host != "" {
		return nil
	}
	if err == nil {
		public = pu.Redacted()
	} else {
		public = "(unparsable)"
	}
	return fmt.Errorf("public URL %q: want an http(s) URL without credentials (it is served to every client)", public)
}

// verifiedFiles takes the files to upload from the verified bundle, after
// checking that it was verified for the channel being pushed to.
func verifiedFiles(o Options) (*verify.Report, []file, error) {
	if o.Bundle == nil {
		return nil, nil, errors.New("push: no verified bundle")
	}
	if o.Bundle.Channel() != o.Channel {
		return nil, nil, fmt.Errorf("%w: the bundle was verified for channel %q, not %q", verify.ErrVerification, o.Bundle.Channel(), o.Channel)
	}
	rep := o.Bundle.Report()
	var files []file
	for _, e := range o.Bundle.Statement().Predicate.Payloads {
		if m, ok := o.Bundle.Member(e.Name); !ok || m.Size != e.Size {
			return nil, nil, fmt.Errorf("%w: %s: not in the bundle as the statement says", verify.ErrVerification, e.Name)
		}
		files = append(files, file{entry: e})
	}
	return rep, files, nil
}

// checkGroups says whether a group routes clients on the track to the
// channel; without one (or with updates off) nobody gets the release and
// the probe cannot run, which is worth a warning, not a refusal.
func checkGroups(ctx context.Context, o Options, ch *nebraska.Channel, warn func(string, ...any)) (bool, error) {
	app, err := o.Client.App(ctx, o.AppID)
	if err != nil {
		return false, fmt.Errorf("reading app %s: %w", o.AppID, err)
	}
	var tracks []string
	for _, g := range app.Groups {
		if g.ChannelID == nil || *g.ChannelID != ch.ID {
			continue
		}
		if g.Track != o.Track {
			tracks = append(tracks, g.Track)
			continue
		}
		if !g.PolicyUpdatesEnabled {
			warn("group %q (track %s) has updates disabled: clients will not be offered this release, and the probe is skipped", g.Name, g.Track)
			return false, nil
		}
		o.Log("channel: " + fmt.Sprintf("%s (%s) found; group %q routes track %s to it, updates enabled", ch.Name, ch.ID, g.Name, g.Track))
		return true, nil
	}
	if len(tracks) > 0 {
		warn("no group with track %q points at %s (tracks %s do; give --track): the probe is skipped", o.Track, ch.Name, strings.Join(tracks, ", "))
	} else {
		warn("no group points at %s: no client will be offered this release, and the probe is skipped", ch.Name)
	}
	return false, nil
}

// upload makes sure the store serves the file at its URL: already there
// and identical, or uploaded and then downloaded back and compared.
func upload(ctx context.Context, o Options, f *file) (*FileRecord, error) {
	e := f.entry
	fr := &FileRecord{Name: e.Name, Kind: e.Kind, URL: f.url, Size: e.Size, SHA256: e.SHA256Hex}
	if got, _, err := store.Fetch(ctx, o.Fetch, f.url, e.Size+1); err == nil && same(got, e) {
		fr.Action = "present"
		o.Log("upload: " + fmt.Sprintf("%s: served already at %s, identical", e.Name, f.url))
		return fr, nil
	}
	if o.DryRun {
		fr.Action = "would upload"
		o.Log("upload: " + fmt.Sprintf("%s: would upload %d bytes to %s as %s (served at %s)", e.Name, e.Size, o.Store, f.key, f.url))
		return fr, nil
	}
	open := func() (io.ReadCloser, error) {
		r, err := o.Bundle.Open(e.Name)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(r), nil
	}
	var prog func(int64)
	if o.Progress != nil {
		prog = func(n int64) { o.Progress("uploading "+e.Name, n, e.Size) }
	}
	if err := o.Store.Put(ctx, f.key, e.Size, open, prog); err != nil {
		return nil, err
	}
	got, status, err := store.Fetch(ctx, o.Fetch, f.url, e.Size+1)
	if err != nil {
		return nil, fmt.Errorf("checking %s after the upload: %w", e.Name, err)
	}
	if !same(got, e) {
		return nil, fmt.Errorf("%w: %s serves other bytes than were uploaded (HTTP %d, %d bytes, sha256 %s; want %d bytes, sha256 %s): is --public-url the store's client-facing URL?",
			ErrRefused, f.url, status, got.Size, got.SHA256Hex(), e.Size, e.SHA256Hex)
	}
	fr.Action = "uploaded"
	o.Log("upload: " + fmt.Sprintf("%s: uploaded %d bytes to %s, downloaded back from %s: size, SHA-1 and SHA-256 match", e.Name, e.Size, o.Store, f.url))
	return fr, nil
}

func same(d store.Digests, e bundle.PayloadEntry) bool {
	return d.Size == e.Size && d.SHA1Base64() == e.SHA1Base64 && d.SHA256Base64() == e.SHA256Base64
}

// packageConfig is the package the bundle asks for: the full payload with
// its SHA-1 (hash) and SHA-256 (postinstall action) in base64, and every
// extra file with SHA-256 in hex. Deltas are uploaded but not registered:
// Nebraska's API has no place for them.
func packageConfig(app string, arch int, version, public string, files []file, main *file) nebraska.PackageConfig {
	base := omaha.JoinURL(public, main.key)
	base = base[:len(base)-len(main.entry.Name)]
	cfg := nebraska.PackageConfig{
		ApplicationID: app, Arch: arch, Type: nebraska.PackageTypeFlatcar, Version: version,
		URL: base, Filename: main.entry.Name, Description: "Flatcar Container Linux " + version,
		Size: strconv.FormatInt(main.entry.Size, 10), Hash: main.entry.SHA1Base64,
		ChannelsBlacklist: []string{}, FlatcarAction: &nebraska.FlatcarActionConf{SHA256: main.entry.SHA256Base64},
	}
	for _, f := range files {
		if f.entry.Kind == bundle.KindExtra {
			cfg.ExtraFiles = append(cfg.ExtraFiles, nebraska.ExtraFileConf{Name: f.entry.Name, Size: strconv.FormatInt(f.entry.Size, 10), Hash: f.entry.SHA1Base64, Hash256: f.entry.SHA256Hex})
		}
	}
	sort.Slice(cfg.ExtraFiles, func(i, j int) bool { return cfg.ExtraFiles[i].Name < cfg.ExtraFiles[j].Name })
	return cfg
}

// differences lists how a stored package differs from the one wanted.
func differences(p *nebraska.Package, want nebraska.PackageConfig) []string {
	var d []string
	cmp := func(what, got, w string) {
		if got != w {
			d = append(d, fmt.Sprintf("%s is %q, the bundle's %q", what, got, w))
		}
	}
	cmp("type", strconv.Itoa(p.Type), strconv.Itoa(want.Type))
	cmp("url", p.URL, want.URL)
	cmp("filename", p.Filename, want.Filename)
	cmp("size", p.Size, want.Size)
	cmp("hash (SHA-1)", p.Hash, want.Hash)
	sha := ""
	if p.FlatcarAction != nil {
		sha = p.FlatcarAction.SHA256
	}
	cmp("flatcar_action.sha256", sha, want.FlatcarAction.SHA256)
	have := map[string]nebraska.ExtraFile{}
	for _, f := range p.ExtraFiles {
		have[f.Name] = f
	}
	for _, f := range want.ExtraFiles {
		h, ok := have[f.Name]
		if !ok {
			d = append(d, fmt.Sprintf("extra file %s is missing", f.Name))
			continue
		}
		delete(have, f.Name)
		cmp("extra file "+f.Name+" size", h.Size, f.Size)
		cmp("extra file "+f.Name+" hash", h.Hash, f.Hash)
		cmp("extra file "+f.Name+" hash256", h.Hash256, f.Hash256)
	}
	var left []string
	for name := range have {
		left = append(left, name)
	}
	sort.Strings(left)
	for _, name := range left {
		d = append(d, fmt.Sprintf("extra file %s is not in the bundle", name))
	}
	return d
}

// probe sends an update check from a client older than anything and
// checks the offer is exactly the bundle's payload and extra files.
func probe(ctx context.Context, o Options, st bundle.Release, files []file, main *file) (*ProbeRecord, error) {
	req := omaha.Request{AppID: o.AppID, Version: "0.0.0", Track: o.Track, Board: st.Board}
	u := strings.TrimSuffix(o.Client.URL(), "/") + "/v1/update/"
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(req.Marshal()))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "text/xml")
	resp, err := o.Client.HTTPClient().Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("probe: POST %s: HTTP %d", u, resp.StatusCode)
	}
	parsed, err := omaha.Parse(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	offer, err := parsed.Offer(o.AppID)
	if err != nil {
		return nil, fmt.Errorf("probe: a client on track %s is not offered the release: %w", o.Track, err)
	}
	pr := &ProbeRecord{Track: o.Track, Version: offer.Version, URL: offer.URL(), Size: offer.Size, SHA256: offer.SHA256, Extra: len(offer.Extra)}
	var bad []string
	check := func(what, got, want string) {
		if got != want {
			bad = append(bad, fmt.Sprintf("%s %q, want %q", what, got, want))
		}
	}
	check("version", offer.Version, st.Version)
	check("url", offer.URL(), main.url)
	check("size", strconv.FormatInt(offer.Size, 10), strconv.FormatInt(main.entry.Size, 10))
	check("hash", offer.SHA1, main.entry.SHA1Base64)
	check("sha256", offer.SHA256, main.entry.SHA256Base64)
	extra := map[string]omaha.Package{}
	for _, p := range offer.Extra {
		extra[p.Name] = p
	}
	for _, f := range files {
		if f.entry.Kind != bundle.KindExtra {
			continue
		}
		p, ok := extra[f.entry.Name]
		if !ok {
			bad = append(bad, "extra file "+f.entry.Name+" is not offered")
			continue
		}
		check(f.entry.Name+" hash", p.Hash, f.entry.SHA1Base64)
		check(f.entry.Name+" hash_sha256", p.HashSHA256, f.entry.SHA256Hex)
		check(f.entry.Name+" size", p.Size, strconv.FormatInt(f.entry.Size, 10))
	}
	if len(bad) > 0 {
		return pr, fmt.Errorf("%w: probe: track %s is offered something else: %s", ErrRefused, o.Track, strings.Join(bad, "; "))
	}
	return pr, nil
}

// versionLess compares dotted numeric versions (semver without tags).
func versionLess(a, b string) bool {
	pa, pb := strings.Split(strings.SplitN(a, "-", 2)[0], "."), strings.Split(strings.SplitN(b, "-", 2)[0], ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			return x < y
		}
	}
	return len(pa) < len(pb)
}
