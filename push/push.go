// Package push publishes a verified release bundle to an update service:
// it verifies the bundle exactly as `augen verify` does, checks everything
// that can be checked before a change (the channel, its floors against the
// release's required version, a package of the same version), uploads
// every payload to a store, checks each upload by downloading it back from
// the URL clients use, registers the package with Nebraska
// (idempotently), marks it a floor if asked, points a channel at it, and
// walks the update path as clients would: from 0.0.0 through each floor to
// the release, reading each answer as update_engine does. Nothing changes
// on the server until every file it will point clients at has been proven
// to be served byte for byte; a failure after a change says what was
// changed and how to finish or undo it.
package push

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/augen-project/augen"
	"github.com/augen-project/augen/bundle"
	"github.com/augen-project/augen/internal/omaha"
	"github.com/augen-project/augen/nebraska"
	"github.com/augen-project/augen/store"
	"github.com/augen-project/augen/verify"
)

// ErrRefused is wrapped when the server already holds something that
// contradicts the bundle (the same version with other contents, floors
// that would let machines skip the release's required version), or the
// store serves other bytes than were uploaded. A refusal comes before any
// change on the server.
var ErrRefused = errors.New("push refused")

// ErrUsage is wrapped by mistakes in what was asked (no public URL for a
// store that has none, a channel the server does not have), found before
// anything is read or changed.
var ErrUsage = errors.New("push: usage")

// ErrIncomplete is wrapped by an IncompleteError: a step failed after the
// server or the store was changed.
var ErrIncomplete = errors.New("push incomplete")

// IncompleteError is a failure after changes: it lists them and says how
// to finish or undo the push.
type IncompleteError struct {
	Err     error
	Changed []string
	// Undo says how to go back ("" when there is nothing to undo on the
	// channel).
	Undo string
}

func (e *IncompleteError) Error() string {
	msg := fmt.Sprintf("%s: %v; already changed: %s; run the same push again to finish it once the cause is fixed", ErrIncomplete, e.Err, strings.Join(e.Changed, "; "))
	if e.Undo != "" {
		msg += "; to undo, " + e.Undo
	}
	return msg
}

func (e *IncompleteError) Unwrap() []error { return []error{ErrIncomplete, e.Err} }

// MaxFloorReason is Nebraska's limit on a floor's reason.
const MaxFloorReason = 500

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
	// FloorReason, if set, marks the release a floor of the channel: a
	// version every machine below it is offered first.
	FloorReason string
	// Fetch downloads files back (default: a plain client).
	Fetch *http.Client
	// DryRun reads and changes nothing anywhere.
	DryRun bool
	// AllowOlder points the channel at a release older than the one it
	// serves (refused otherwise).
	AllowOlder bool
	// Log receives one line per step ("upload: …", "channel: …") and
	// warnings.
	Log augen.Log
	// Progress, if set, is called as uploads go ("uploading NAME").
	Progress augen.Progress
	// KeyLabel, if set, names a key in log lines from its fingerprint
	// (verify.Trust.Label: the policy's name next to it).
	KeyLabel func(id string) string
}

// Record is what a push did, for --json.
type Record struct {
	DryRun          bool         `json:"dry_run"`
	Server          string       `json:"server"`
	ServerVersion   string       `json:"server_version,omitempty"`
	Store           string       `json:"store"`
	AppID           string       `json:"app_id"`
	Version         string       `json:"version"`
	Board           string       `json:"board"`
	RequiresVersion string       `json:"requires_version,omitempty"`
	BundleSigners   []string     `json:"bundle_signers"`
	Files           []FileRecord `json:"files"`
	Package         PkgRecord    `json:"package"`
	Floor           *FloorRecord `json:"floor,omitempty"`
	Channel         ChanRecord   `json:"channel"`
	// Floors are the channel's floors before the push.
	Floors []FloorInfo `json:"floors"`
	// Path is the update path the probe walked, from 0.0.0 to the release.
	Path  []ProbeStep  `json:"path,omitempty"`
	Probe *ProbeRecord `json:"probe,omitempty"`
	// Changed lists what this push changed, in order.
	Changed  []string `json:"changed"`
	Warnings []string `json:"warnings"`
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

// FloorRecord is the release marked as a floor (--floor-reason).
type FloorRecord struct {
	Reason string `json:"reason"`
	// Action is "set", "unchanged", "reason changed" or "would set".
	Action string `json:"action"`
}

// FloorInfo is one floor of a channel.
type FloorInfo struct {
	Version   string `json:"version"`
	PackageID string `json:"package_id"`
	Reason    string `json:"reason"`
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

// ProbeStep is one update check of the path: a machine at From was
// offered Offered (a floor, or the release).
type ProbeStep struct {
	From    string `json:"from"`
	Offered string `json:"offered"`
	Floor   bool   `json:"floor"`
	URL     string `json:"url"`
}

// ProbeRecord is what the last update check (the one offering the
// release) was offered.
type ProbeRecord struct {
	Track   string `json:"track"`
	From    string `json:"from"`
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

// Preflight checks what needs no bundle, before anything is verified or
// changed: a client-facing URL for the store, the channel on the server
// (by name, for any arch; the arch is the bundle's and is checked after
// the verify), and a floor reason Nebraska takes. Its errors wrap
// ErrUsage, except those of reaching the server.
func Preflight(ctx context.Context, o Options) error {
	if o.AppID == "" {
		o.AppID = nebraska.FlatcarAppID
	}
	if _, err := publicURL(o); err != nil {
		return err
	}
	if len(o.FloorReason) > MaxFloorReason || strings.ContainsAny(o.FloorReason, "\r\n") {
		return fmt.Errorf("%w: --floor-reason: at most %d characters on one line (Nebraska's limit)", ErrUsage, MaxFloorReason)
	}
	chs, err := o.Client.Channels(ctx, o.AppID)
	if err != nil {
		return fmt.Errorf("listing the channels of %s: %w", o.Client.URL(), err)
	}
	names := map[string]bool{}
	for _, ch := range chs {
		if ch.Name != o.Channel {
			names[ch.Name] = true
			continue
		}
		if o.FloorReason != "" {
			if _, err := o.Client.Floors(ctx, ch.ID); errors.Is(err, nebraska.ErrNoFloors) {
				return fmt.Errorf("%w: --floor-reason: %s has no floors (multi-step updates; Nebraska has them since 2025)", ErrUsage, o.Client.URL())
			} else if err != nil {
				return fmt.Errorf("reading the floors of %s: %w", o.Channel, err)
			}
		}
		return nil
	}
	list := make([]string, 0, len(names))
	for n := range names {
		list = append(list, n)
	}
	sort.Strings(list)
	return fmt.Errorf("%w: channel %q does not exist on %s (it has: %s); creating channels and groups is an admin's one-time setup", ErrUsage, o.Channel, o.Client.URL(), strings.Join(list, ", "))
}

// publicURL is the client-facing base URL the files are served from.
func publicURL(o Options) (string, error) {
	public := o.PublicURL
	if public == "" {
		public = o.Store.PublicURL()
	}
	if public == "" {
		return "", fmt.Errorf("%w: the store %s has no URL of its own: give --public-url (the base URL clients download from)", ErrUsage, o.Store)
	}
	if err := CheckPublicURL(public); err != nil {
		return "", fmt.Errorf("%w: %w", ErrUsage, err)
	}
	return public, nil
}

// Push runs the whole push. On error the record holds what was done
// before it; an error after a change is an *IncompleteError.
func Push(ctx context.Context, o Options) (*Record, error) {
	p := newRun(ctx, o)
	for _, step := range []func() error{p.verify, p.read, p.upload, p.register, p.floor, p.point, p.probe} {
		if err := step(); err != nil {
			return p.rec, err
		}
	}
	return p.rec, nil
}

// run is one push: its options, what each step learned for the next, and
// the record. Its methods are Push's steps, in order; each reads only what
// the steps before it set.
type run struct {
	ctx  context.Context
	o    Options
	rec  *Record
	undo string // how to undo what was changed, for an IncompleteError

	// verify
	st     bundle.Release
	files  []file
	main   *file
	arch   int
	public string
	// read
	ch      *nebraska.Channel
	probeOK bool
	floors  []nebraska.Package
	want    nebraska.PackageConfig
	pkg     *nebraska.Package
}

func newRun(ctx context.Context, o Options) *run {
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
	return &run{ctx: ctx, o: o, rec: &Record{DryRun: o.DryRun, Server: o.Client.URL(), Store: o.Store.String(), AppID: o.AppID,
		Files: []FileRecord{}, Floors: []FloorInfo{}, Changed: []string{}, Warnings: []string{}}}
}

func (p *run) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.rec.Warnings = append(p.rec.Warnings, msg)
	p.o.Log("warning: " + msg)
}

func (p *run) changed(format string, args ...any) {
	p.rec.Changed = append(p.rec.Changed, fmt.Sprintf(format, args...))
}

// after wraps an error once something was changed.
func (p *run) after(err error) error {
	if len(p.rec.Changed) == 0 {
		return err
	}
	return &IncompleteError{Err: err, Changed: p.rec.Changed, Undo: p.undo}
}

// verify (step 1): the bundle was verified, as augen verify does, with the
// channel the policy must allow; its files get their store keys and URLs.
func (p *run) verify() error {
	o, rec := p.o, p.rec
	rep, files, err := verifiedFiles(o)
	if err != nil {
		return err
	}
	st := rep.Statement.Predicate
	p.st, p.files = st, files
	rec.Version, rec.Board, rec.BundleSigners, rec.RequiresVersion = st.Version, st.Board, rep.BundleSigners, st.RequiresVersion
	if st.AppID != "" && !strings.EqualFold(st.AppID, o.AppID) {
		return fmt.Errorf("%w: the bundle is for app %s, the push for %s", ErrRefused, st.AppID, o.AppID)
	}
	label := o.KeyLabel
	if label == nil {
		label = func(id string) string { return id }
	}
	var by []string
	for _, id := range rep.BundleSigners {
		by = append(by, label(id))
	}
	o.Log("verify: " + fmt.Sprintf("%s %s %s: OK, %d payload(s), signed by %s, allowed on %s", o.Name, st.Board, st.Version, len(rep.Payloads), strings.Join(by, ", "), o.Channel))
	if p.arch = nebraska.ArchForBoard(st.Board); p.arch == 0 {
		return fmt.Errorf("board %q has no Nebraska arch", st.Board)
	}
	if p.public, err = publicURL(o); err != nil {
		return err
	}
	for i := range files {
		files[i].key = st.Board + "/" + st.Version + "/" + files[i].entry.Name
		files[i].url = omaha.JoinURL(p.public, files[i].key)
		if files[i].entry.Kind == bundle.KindFull {
			p.main = &files[i]
		}
	}
	if p.main == nil {
		return fmt.Errorf("%w: the bundle has no full payload to publish", ErrRefused)
	}
	return nil
}

// read (step 2): everything read before anything is changed: the channel,
// what routes clients to it, its floors, and a package of this version.
func (p *run) read() error {
	ctx, o, rec, st := p.ctx, p.o, p.rec, p.st
	if cfg, err := o.Client.Config(ctx); err == nil {
		rec.ServerVersion, _ = cfg["nebraska_version"].(string)
		mode, _ := cfg["auth_mode"].(string)
		o.Log("server: " + fmt.Sprintf("%s: Nebraska %s, auth %s", o.Client.URL(), orNone(rec.ServerVersion), orNone(mode)))
	}
	ch, err := o.Client.FindChannel(ctx, o.AppID, o.Channel, p.arch)
	if err != nil {
		return fmt.Errorf("channel %s: %w", o.Channel, err)
	}
	if ch == nil {
		return fmt.Errorf("%w: channel %q has no %s (arch %d) channel on %s; creating channels and groups is an admin's one-time setup", ErrUsage, o.Channel, st.Board, p.arch, o.Client.URL())
	}
	p.ch, rec.Channel = ch, ChanRecord{Name: ch.Name, ID: ch.ID}
	if p.probeOK, err = checkGroups(ctx, o, ch, p.warn); err != nil {
		return err
	}
	if err := p.readFloors(); err != nil {
		return err
	}
	// A channel is not pointed back at an older release by accident:
	// machines never downgrade, so that only stops newer ones from being
	// offered anything.
	if cur, err := o.Client.Channel(ctx, o.AppID, ch.ID); err == nil && cur.Package != nil &&
		bundle.VersionLess(st.Version, cur.Package.Version) && !o.AllowOlder {
		return fmt.Errorf("%w: %s serves %s, newer than this release %s: machines do not downgrade, so pointing it back would only stop offering updates (nothing was uploaded or changed); to roll back, publish a higher version; --allow-older points it back anyway",
			ErrRefused, o.Channel, cur.Package.Version, st.Version)
	}
	p.want = packageConfig(o.AppID, p.arch, st.Version, p.public, p.files, p.main)
	if p.pkg, err = o.Client.FindPackage(ctx, o.AppID, st.Version, p.arch); err != nil {
		return fmt.Errorf("looking up package %s: %w", st.Version, err)
	}
	if p.pkg != nil {
		if diff := differences(p.pkg, p.want); len(diff) > 0 {
			return fmt.Errorf("%w: package %s (arch %d) exists on the server (id %s) and differs from this bundle: %s; a published version is immutable, release a new version (nothing was uploaded or changed)", ErrRefused, st.Version, p.arch, p.pkg.ID, strings.Join(diff, "; "))
		}
	}
	return nil
}

// readFloors reads the channel's floors and checks the release's
// requires_version against them.
func (p *run) readFloors() error {
	o, rec := p.o, p.rec
	floors, err := o.Client.Floors(p.ctx, p.ch.ID)
	switch {
	case errors.Is(err, nebraska.ErrNoFloors) && o.FloorReason != "":
		return fmt.Errorf("%w: --floor-reason: %s (Nebraska %s) has no floors (multi-step updates)", ErrUsage, o.Client.URL(), orNone(rec.ServerVersion))
	case errors.Is(err, nebraska.ErrNoFloors):
		o.Log("floors: the server has no floors (multi-step updates): every machine is offered the channel's package")
	case err != nil:
		return fmt.Errorf("reading the floors of %s: %w", o.Channel, err)
	}
	p.floors, rec.Floors = floors, FloorsOf(floors)
	if len(floors) > 0 {
		o.Log("floors: " + fmt.Sprintf("%s has %d floor(s): %s", o.Channel, len(floors), floorList(floors)))
	}
	return checkRequiredVersion(p.st, o.Channel, floors)
}

// upload (step 3): every file uploaded, then proven served byte for byte.
func (p *run) upload() error {
	var deltas []string
	for _, f := range p.files {
		if f.entry.Kind == bundle.KindDelta {
			deltas = append(deltas, f.entry.Name)
		}
	}
	if len(deltas) > 0 {
		p.o.Log("upload: " + fmt.Sprintf("%s uploaded but not registered: a Nebraska package names one full payload and its extra files, so no machine is offered a delta by this push", strings.Join(deltas, ", ")))
	}
	for i := range p.files {
		fr, err := upload(p.ctx, p.o, &p.files[i])
		if fr != nil {
			p.rec.Files = append(p.rec.Files, *fr)
			if fr.Action == "uploaded" {
				p.changed("uploaded %s", fr.URL)
			}
		}
		if err != nil {
			return p.after(err)
		}
	}
	return nil
}

// register (step 4): the package registered, or the identical one reused.
func (p *run) register() error {
	o, st, arch := p.o, p.st, p.arch
	switch {
	case p.pkg != nil:
		p.rec.Package = PkgRecord{ID: p.pkg.ID, Action: "reused"}
		o.Log("package: " + fmt.Sprintf("%s (arch %d) is registered already, identical: %s", st.Version, arch, p.pkg.ID))
		return nil
	case o.DryRun:
		p.rec.Package = PkgRecord{Action: "would create"}
		o.Log("package: " + fmt.Sprintf("would create %s (arch %d): %s, %d extra file(s)", st.Version, arch, p.want.URL+p.want.Filename, len(p.want.ExtraFiles)))
		return nil
	}
	pkg, err := o.Client.CreatePackage(p.ctx, o.AppID, p.want)
	if err != nil {
		// A 500 may be a concurrent push of the same version: look again.
		if again, ferr := o.Client.FindPackage(p.ctx, o.AppID, st.Version, arch); ferr == nil && again != nil && len(differences(again, p.want)) == 0 {
			pkg, err = again, nil
		}
	}
	if err != nil {
		return p.after(fmt.Errorf("creating package %s: %w", st.Version, err))
	}
	p.pkg, p.rec.Package = pkg, PkgRecord{ID: pkg.ID, Action: "created"}
	p.changed("created package %s (id %s)", st.Version, pkg.ID)
	o.Log("package: " + fmt.Sprintf("created %s (arch %d): %s", st.Version, arch, pkg.ID))
	return nil
}

// floor (step 5): the package marked a floor (before the channel points at
// it: a floor above the channel's package is not offered to anyone).
func (p *run) floor() error {
	o, st := p.o, p.st
	if o.FloorReason == "" {
		return nil
	}
	p.rec.Floor = &FloorRecord{Reason: o.FloorReason}
	var have *nebraska.Package
	for i := range p.floors {
		if p.pkg != nil && p.floors[i].ID == p.pkg.ID {
			have = &p.floors[i]
		}
	}
	switch {
	case have != nil && deref(have.FloorReason) == o.FloorReason:
		p.rec.Floor.Action = "unchanged"
		o.Log("floor: " + fmt.Sprintf("%s is a floor of %s already: %q", st.Version, o.Channel, o.FloorReason))
		return nil
	case o.DryRun:
		p.rec.Floor.Action = "would set"
		o.Log("floor: " + fmt.Sprintf("would mark %s a floor of %s: %q", st.Version, o.Channel, o.FloorReason))
		return nil
	}
	if err := o.Client.SetFloor(p.ctx, p.ch.ID, p.pkg.ID, o.FloorReason); err != nil {
		return p.after(fmt.Errorf("marking %s a floor of %s: %w", st.Version, o.Channel, err))
	}
	p.rec.Floor.Action = "set"
	if have != nil {
		p.rec.Floor.Action = "reason changed"
	}
	p.changed("marked %s a floor of %s", st.Version, o.Channel)
	o.Log("floor: " + fmt.Sprintf("%s is now a floor of %s: %q", st.Version, o.Channel, o.FloorReason))
	p.floors = append(p.floors, *p.pkg)
	return nil
}

// point (step 6): the channel pointed at the package: GET, PUT the same
// object with the package, GET again.
func (p *run) point() error {
	o, st, rec := p.o, p.st, p.rec
	cur, err := o.Client.Channel(p.ctx, o.AppID, p.ch.ID)
	if err != nil {
		return p.after(fmt.Errorf("channel %s: %w", o.Channel, err))
	}
	if cur.PackageID != nil {
		rec.Channel.OldPackageID = *cur.PackageID
		if cur.Package != nil {
			rec.Channel.OldVersion = cur.Package.Version
		}
	}
	if p.pkg != nil && cur.PackageID != nil && *cur.PackageID == p.pkg.ID {
		rec.Channel.Action = "unchanged"
		o.Log("channel: " + fmt.Sprintf("%s already serves %s", o.Channel, st.Version))
		return nil
	}
	if rec.Channel.OldVersion != "" && bundle.VersionLess(st.Version, rec.Channel.OldVersion) {
		p.warn("%s served %s, newer than %s: clients do not downgrade; to roll back, publish a higher version", o.Channel, rec.Channel.OldVersion, st.Version)
	}
	if o.DryRun {
		rec.Channel.Action = "would point"
		o.Log("channel: " + fmt.Sprintf("would point %s from %s to %s", o.Channel, orNone(rec.Channel.OldVersion), st.Version))
		return nil
	}
	id := p.pkg.ID
	if _, err := o.Client.PutChannel(p.ctx, o.AppID, p.ch.ID, nebraska.ChannelConfig{Name: cur.Name, Color: cur.Color, Arch: cur.Arch, ApplicationID: o.AppID, PackageID: &id}); err != nil {
		return p.after(fmt.Errorf("pointing %s at %s: %w", o.Channel, st.Version, err))
	}
	p.changed("pointed %s from %s to %s", o.Channel, orNone(rec.Channel.OldVersion), st.Version)
	p.undo = fmt.Sprintf("clear %s's package in Nebraska", o.Channel)
	if rec.Channel.OldPackageID != "" {
		p.undo = fmt.Sprintf("point %s back at %s (package %s) in Nebraska", o.Channel, orNone(rec.Channel.OldVersion), rec.Channel.OldPackageID)
	}
	now, err := o.Client.Channel(p.ctx, o.AppID, p.ch.ID)
	if err != nil {
		return p.after(fmt.Errorf("re-reading %s: %w", o.Channel, err))
	}
	if now.PackageID == nil || *now.PackageID != id {
		return p.after(fmt.Errorf("%s does not serve package %s after the update (another push at the same time?)", o.Channel, id))
	}
	rec.Channel.Action = "pointed"
	o.Log("channel: " + fmt.Sprintf("%s now serves %s (was %s)", o.Channel, st.Version, orNone(rec.Channel.OldVersion)))
	return nil
}

// probe (step 7): the update path walked as machines would walk it.
func (p *run) probe() error {
	if p.o.DryRun || !p.probeOK {
		return nil
	}
	if err := walk(p.ctx, p.o, p.rec, p.st, p.floors, p.files, p.main); err != nil {
		return p.after(err)
	}
	pr := p.rec.Probe
	p.o.Log("probe: " + fmt.Sprintf("a machine (%s) at %s on track %s is offered %s, %d bytes, sha256 %s, %d extra file(s): as pushed", p.st.Board, pr.From, p.o.Track, pr.URL, pr.Size, pr.SHA256, pr.Extra))
	return nil
}

// FloorsOf is how a channel's floors are reported: version, package and
// reason, in the server's order (oldest first).
func FloorsOf(floors []nebraska.Package) []FloorInfo {
	out := []FloorInfo{}
	for _, f := range floors {
		out = append(out, FloorInfo{Version: f.Version, PackageID: f.ID, Reason: deref(f.FloorReason)})
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func floorList(floors []nebraska.Package) string {
	var parts []string
	for _, f := range floors {
		parts = append(parts, f.Version)
	}
	return strings.Join(parts, ", ")
}

// checkRequiredVersion refuses a release that requires machines to come
// from RequiresVersion or later, on a channel where an older machine would
// be offered it directly. Nebraska offers a machine at v the oldest floor
// above v (and not above the channel's package) before the package, so a
// machine below the required version reaches the release directly exactly
// when no floor lies in [RequiresVersion, release).
func checkRequiredVersion(st bundle.Release, channel string, floors []nebraska.Package) error {
	if st.RequiresVersion == "" {
		return nil
	}
	var best string
	for _, f := range floors {
		lo, ok1 := bundle.CompareVersions(f.Version, st.RequiresVersion)
		hi, ok2 := bundle.CompareVersions(f.Version, st.Version)
		if ok1 && ok2 && lo >= 0 && hi < 0 {
			best = f.Version
		}
	}
	if best != "" {
		return nil
	}
	have := "it has none"
	if len(floors) > 0 {
		have = "its floors are " + floorList(floors)
	}
	return fmt.Errorf("%w: release %s requires machines to update from %s or later, but on %s a machine older than %s would be offered it directly (%s): push a release at or above %s and below %s with --floor-reason first (nothing was uploaded or changed)",
		ErrRefused, st.Version, st.RequiresVersion, channel, st.RequiresVersion, have, st.RequiresVersion, st.Version)
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

// walk sends update checks as machines on the track would, from 0.0.0:
// each step must be offered the next floor above the machine's version
// (or the release when there is none), exactly as Nebraska records that
// package, and the step that reaches the release exactly the bundle's
// payload and extra files, from a version no older than the release's
// RequiresVersion.
func walk(ctx context.Context, o Options, rec *Record, st bundle.Release, floors []nebraska.Package, files []file, main *file) error {
	sort.SliceStable(floors, func(i, j int) bool { return bundle.VersionLess(floors[i].Version, floors[j].Version) })
	from := "0.0.0"
	for step := 0; step <= len(floors); step++ {
		next := (*nebraska.Package)(nil)
		for i := range floors {
			if bundle.VersionLess(from, floors[i].Version) && !bundle.VersionLess(st.Version, floors[i].Version) && floors[i].Version != st.Version {
				next = &floors[i]
				break
			}
		}
		offer, err := ask(ctx, o, st.Board, from)
		if err != nil {
			return fmt.Errorf("probe: a machine at %s on track %s: %w", from, o.Track, err)
		}
		ps := ProbeStep{From: from, Offered: offer.Version, Floor: next != nil, URL: offer.URL()}
		rec.Path = append(rec.Path, ps)
		if next != nil {
			if bad := offerDiffers(offer, floorWant(*next)); len(bad) > 0 {
				return fmt.Errorf("probe: a machine at %s on track %s should be offered the floor %s as Nebraska records it, but is offered %s", from, o.Track, next.Version, strings.Join(bad, "; "))
			}
			o.Log("probe: " + fmt.Sprintf("a machine at %s is offered the floor %s first: as recorded", from, next.Version))
			from = next.Version
			continue
		}
		rec.Probe = &ProbeRecord{Track: o.Track, From: from, Version: offer.Version, URL: offer.URL(), Size: offer.Size, SHA256: offer.SHA256, Extra: len(offer.Extra)}
		bad := offerDiffers(offer, bundleWant(st, files, main))
		if len(bad) > 0 {
			return fmt.Errorf("probe: a machine at %s on track %s is offered something else than the release: %s", from, o.Track, strings.Join(bad, "; "))
		}
		if st.RequiresVersion != "" && bundle.VersionLess(from, st.RequiresVersion) {
			return fmt.Errorf("probe: a machine at %s is offered %s directly, but the release requires %s or later", from, st.Version, st.RequiresVersion)
		}
		return nil
	}
	return fmt.Errorf("probe: the update path did not reach %s after %d floor(s)", st.Version, len(floors))
}

// wanted is what an offer must say.
type wanted struct {
	version, url, sha1, sha256 string
	size                       int64
	extra                      map[string][3]string // name: hash, hash_sha256, size
}

func floorWant(p nebraska.Package) wanted {
	w := wanted{version: p.Version, url: omaha.JoinURL(p.URL, p.Filename), sha1: p.Hash, extra: map[string][3]string{}}
	w.size, _ = strconv.ParseInt(p.Size, 10, 64)
	if p.FlatcarAction != nil {
		w.sha256 = p.FlatcarAction.SHA256
	}
	for _, f := range p.ExtraFiles {
		w.extra[f.Name] = [3]string{f.Hash, f.Hash256, f.Size}
	}
	return w
}

func bundleWant(st bundle.Release, files []file, main *file) wanted {
	w := wanted{version: st.Version, url: main.url, size: main.entry.Size, sha1: main.entry.SHA1Base64, sha256: main.entry.SHA256Base64, extra: map[string][3]string{}}
	for _, f := range files {
		if f.entry.Kind == bundle.KindExtra {
			w.extra[f.entry.Name] = [3]string{f.entry.SHA1Base64, f.entry.SHA256Hex, strconv.FormatInt(f.entry.Size, 10)}
		}
	}
	return w
}

// offerDiffers lists how an offer, as the client reads it, differs from
// what it should be: every URL the client may try, the size as the client
// parses it, the sha256 it checks, and each extra file.
func offerDiffers(offer *omaha.Offer, w wanted) []string {
	var bad []string
	check := func(what, got, want string) {
		if got != want {
			bad = append(bad, fmt.Sprintf("%s %q, want %q", what, got, want))
		}
	}
	check("version", offer.Version, w.version)
	for i, u := range offer.URLs {
		what := "url"
		if len(offer.URLs) > 1 {
			what = fmt.Sprintf("url %d of %d", i+1, len(offer.URLs))
		}
		check(what, omaha.JoinURL(u, offer.Name), w.url)
	}
	if offer.Size != w.size {
		bad = append(bad, fmt.Sprintf("size %q, which the client reads as %d, want %d", offer.SizeAttr, offer.Size, w.size))
	}
	check("hash", offer.SHA1, w.sha1)
	check("postinstall sha256", offer.SHA256, w.sha256)
	seen := map[string]bool{}
	for _, p := range offer.Extra {
		ex, ok := w.extra[p.Name]
		if !ok {
			bad = append(bad, "extra file "+p.Name+" is not the release's")
			continue
		}
		if seen[p.Name] {
			bad = append(bad, "extra file "+p.Name+" is offered twice")
		}
		seen[p.Name] = true
		check(p.Name+" hash", p.Hash, ex[0])
		check(p.Name+" hash_sha256", p.HashSHA256, ex[1])
		check(p.Name+" size", p.Size, ex[2])
	}
	var missing []string
	for name := range w.extra {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	for _, name := range missing {
		bad = append(bad, "extra file "+name+" is not offered")
	}
	return bad
}

// ProbeMachineID is the machine id a probe at version claims to be: one
// per (track, version), so that Nebraska's record of the update it granted
// that machine never answers a later probe from another version, and the
// probes are recognisable in its statistics (omaha.ProbeMachineID's
// prefix).
func ProbeMachineID(track, version string) string {
	sum := sha256.Sum256([]byte(track + "\x00" + version))
	return omaha.ProbeMachineID[:8] + hex.EncodeToString(sum[:12])
}

// ask sends one update check as a machine at version and reads the answer
// as update_engine does.
func ask(ctx context.Context, o Options, board, version string) (*omaha.Offer, error) {
	req := omaha.Request{AppID: o.AppID, Version: version, Track: o.Track, Board: board, MachineID: ProbeMachineID(o.Track, version)}
	u := strings.TrimSuffix(o.Client.URL(), "/") + "/v1/update/"
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(req.Marshal()))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "text/xml")
	resp, err := o.Client.HTTPClient().Do(hreq)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST %s: HTTP %d", u, resp.StatusCode)
	}
	offer, err := omaha.Read(resp.Body)
	if errors.Is(err, omaha.ErrNoUpdate) {
		return nil, errors.New("offered no update")
	}
	return offer, err
}
