package main

import (
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/augen-project/augen/nebraska"
	"github.com/augen-project/augen/push"
	"github.com/augen-project/augen/signer"
	"github.com/augen-project/augen/store"
	"github.com/augen-project/augen/verify"
)

const pushUsage = `Usage: augen push --policy policy.json --server URL --channel CHANNEL --store URL
                  [--public-url URL] [--old VERSION=IMAGE]... [--floor-reason TEXT]
                  [--dry-run] [--json] release.tar

Publishes a release bundle to a Nebraska update service, one step per line:
  0. check, before anything is read or changed, what needs no bundle: the
     policy has CHANNEL, the server has CHANNEL (exit 2 if not, listing the
     ones it has), the store has a client-facing URL;
  1. verify the bundle exactly as "augen verify" does (always), and that the
     policy lets the keys that signed it publish to CHANNEL; deltas are
     applied to the old releases given with --old;
  2. read the channel, its groups and floors, and any package of this
     version: a package of this version with other contents, or floors that
     let machines older than the release's --requires-version reach it
     directly, stop the push here, with nothing changed;
  3. upload every payload and extra file to the store under BOARD/VERSION/:
       file:///DIR          a directory (e.g. Nebraska's -host-flatcar-packages
                            folder; give --public-url, e.g. http://HOST/flatcar/)
       https://HOST/PATH    HTTP PUT, as nginx's dav module takes it
                            (AUGEN_STORE_USER / AUGEN_STORE_PASSWORD, or
                            AUGEN_STORE_PASSWORD_FILE, for basic auth; a
                            redirected upload fails)
       s3://BUCKET/PREFIX   any S3-compatible store; endpoint from
                            AWS_ENDPOINT_URL(_S3), credentials from the AWS
                            environment or shared credentials file
     and download each back from the client-facing URL, comparing size,
     SHA-1 and SHA-256 (a status code proves nothing);
  4. register the package (or reuse an identical one);
  5. with --floor-reason, mark it a floor of CHANNEL: every machine below it
     is offered it first (Nebraska's multi-step updates);
  6. point CHANNEL at it (GET, PUT with every field, GET again);
  7. walk the update path as machines on the channel's track would: from
     0.0.0 through each floor to the release, each answer read as
     update_engine reads it; every floor must be offered as Nebraska records
     it, and the release exactly as the bundle has it.
Running the same push again changes nothing; an interrupted push completes
when run again. A failure after a change says what was changed and how to
finish or undo it. The token (--token-file or AUGEN_TOKEN, sent as a bearer
token) never appears in output. Exit status: 2 for a usage mistake, 3 when
the bundle fails verification, 1 for anything else.

Example:
  augen push --policy policy.json --server https://nebraska.example.com \
      --channel dev-channel --store s3://flatcar-updates/ \
      --public-url https://update.example.com/ \
      --old 4459.1.0=flatcar_production_image-4459.1.0.bin.bz2 release.tar
`

const pushStatusUsage = `Usage: augen push status --server URL [--channel CHANNEL] [--board amd64-usr]
                         [--verify --policy policy.json] [--json]

Shows what a channel serves now: version, URL, size and hashes of the payload
and its extra files, the channel's floors (the versions machines below them
are offered first) with their reasons, and which groups route clients to it.
Without --channel, lists the server's channels for the board.

With --verify, downloads the payload and extra files the channel serves (as
a client would, from the package's URL) and verifies them: sizes and hashes
against what Nebraska offers, the payload's signature against the policy's
payload keys, and a simulated apply of the full payload (exit 3 if any check
fails).

Example:
  augen push status --server https://nebraska.example.com --channel stable --json
  augen push status --server https://nebraska.example.com --channel stable \
      --verify --policy policy.json
`

type serverFlags struct {
	server, tokenFile, caFile, appID *string
}

func addServerFlags(fs *pflag.FlagSet) serverFlags {
	return serverFlags{
		server:    fs.String("server", "", "the Nebraska server's base `URL`"),
		tokenFile: fs.String("token-file", "", "read the bearer token from `file` (or set AUGEN_TOKEN)"),
		caFile:    fs.String("ca-file", "", "trust this private CA (PEM `file`) for TLS, besides the system's"),
		appID:     fs.String("app-id", nebraska.FlatcarAppID, "the application `id`"),
	}
}

// client opens the Nebraska client. The token comes from a file or the
// environment, never from a flag.
func (sf serverFlags) client() (*nebraska.Client, error) {
	if *sf.server == "" {
		return nil, usagef("--server is required")
	}
	token := os.Getenv("AUGEN_TOKEN")
	if *sf.tokenFile != "" {
		b, err := signer.ReadSecretFile(*sf.tokenFile, "token file")
		if err != nil {
			return nil, withHint(err, "chmod 600 the token file")
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return nil, fmt.Errorf("token file %s is empty", *sf.tokenFile)
		}
	}
	c, err := nebraska.New(*sf.server, nebraska.Options{Token: token, CAFile: *sf.caFile})
	if err != nil {
		// --server or --ca-file is wrong: nothing was contacted.
		return nil, usageError{err.Error()}
	}
	return c, nil
}

// pushFlags are push's flags.
type pushFlags struct {
	sf                                                       serverFlags
	policy, channel, track, storeURL, publicURL, floorReason *string
	olds                                                     []string
	uf                                                       *unpackFlags
	dryRun, allowOlder, allowUnapplied, asJSON               *bool
}

func addPushFlags(fs *pflag.FlagSet) *pushFlags {
	f := &pushFlags{policy: fs.String("policy", "", "the trust policy `file`")}
	f.sf = addServerFlags(fs)
	f.channel = fs.String("channel", "", "the `channel` to point at the release (e.g. dev-channel)")
	f.track = fs.String("track", "", "the `track` (GROUP= of update.conf) clients use (default: the channel's name); not core_upload_update's --track, which named the channel (--channel here)")
	f.storeURL = fs.String("store", "", "where to upload: file:///DIR, https://HOST/PATH or s3://BUCKET/PREFIX")
	f.publicURL = fs.String("public-url", "", "the base `URL` clients download from (default: the store's URL)")
	f.floorReason = fs.String("floor-reason", "", "mark the release a floor of the channel, for this `reason` (machines below it are offered it first)")
	fs.StringArrayVar(&f.olds, "old", nil, "the old release a delta applies to, as `VERSION=IMAGE` (a production image) or VERSION=USR.bin,VMLINUZ (repeatable)")
	f.uf = sizeOnlyUnpackFlags(fs)
	f.dryRun = fs.Bool("dry-run", false, "verify and print the plan; change nothing")
	f.allowOlder = fs.Bool("allow-older", false, "point the channel at a release older than the one it serves (machines never downgrade: this only stops newer ones from being offered updates)")
	f.allowUnapplied = fs.Bool("allow-unapplied-deltas", false, "publish deltas that were checked but not applied (without --old for their version)")
	f.asJSON = fs.Bool("json", false, "print a record of what was done as JSON")
	return f
}

func pushCmd(e *env, args []string) error {
	fs := newFlags(e, "push", pushUsage)
	f := addPushFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := f.usage(fs); err != nil {
		return err
	}
	opts, trust, err := f.options(e, fs.Arg(0))
	if err != nil {
		return err
	}
	// Mistakes that need no bundle are found before the bundle is read.
	if err := push.Preflight(e.ctx, opts); err != nil {
		return asUsage(err)
	}
	rec, perr := f.verifyAndPush(e, opts, trust)
	if *f.asJSON {
		out := struct {
			*push.Record
			Error string `json:"error,omitempty"`
		}{Record: rec}
		if perr != nil {
			out.Error = oneLine(perr.Error())
		}
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	}
	if perr != nil || *f.asJSON {
		return perr
	}
	what, floor := "pushed", ""
	if *f.dryRun {
		what = "dry run, nothing changed:"
	}
	if rec.Floor != nil {
		floor = ", floor " + rec.Floor.Action
	}
	fmt.Fprintf(e.stdout, "%s %s %s to %s (%s): package %s%s, channel %s\n", what, rec.Board, rec.Version, *f.channel, opts.Client.URL(), rec.Package.Action, floor, rec.Channel.Action)
	return nil
}

// usage refuses a push whose flags are missing or contradict each other.
func (f *pushFlags) usage(fs *pflag.FlagSet) error {
	var missing []string
	for _, x := range []struct{ name, v string }{{"--policy", *f.policy}, {"--server", *f.sf.server}, {"--channel", *f.channel}, {"--store", *f.storeURL}} {
		if x.v == "" {
			missing = append(missing, x.name)
		}
	}
	switch {
	case fs.NArg() != 1:
		return withHint(usagef("expected one bundle"), `run "augen push --help"`)
	case *f.channel == "" && *f.track != "":
		return withHint(usagef("--channel is missing (--track %s is the track of the group that routes machines to the channel, not the channel)", *f.track),
			fmt.Sprintf("core_upload_update's --track named the channel: give --channel %s", *f.track))
	case len(missing) > 0:
		return withHint(usagef("%s %s required", joinAnd(missing), map[bool]string{true: "is", false: "are"}[len(missing) == 1]), `run "augen push --help"`)
	case fs.Changed("floor-reason") && strings.TrimSpace(*f.floorReason) == "":
		return usagef("--floor-reason: give the reason machines must install this release first")
	}
	if *f.publicURL != "" {
		if err := push.CheckPublicURL(*f.publicURL); err != nil {
			return usageError{err.Error()}
		}
	}
	return nil
}

// options opens the server client, the store and the policy (nothing is
// contacted yet) and returns push's options for the bundle at name.
func (f *pushFlags) options(e *env, name string) (push.Options, *verify.Trust, error) {
	client, err := f.sf.client()
	if err != nil {
		return push.Options{}, nil, err
	}
	storeEnvErr = nil
	st, err := store.Open(*f.storeURL, store.Options{CAFile: *f.sf.caFile, Getenv: storeEnv})
	if err == nil && storeEnvErr != nil {
		return push.Options{}, nil, withHint(storeEnvErr, "chmod 600 the password file")
	}
	if err != nil {
		// --store or its environment is wrong: nothing was contacted.
		return push.Options{}, nil, usageError{err.Error()}
	}
	trust, err := loadPolicy(*f.policy)
	if err != nil {
		return push.Options{}, nil, err
	}
	if _, ok := trust.Channels[*f.channel]; !ok {
		return push.Options{}, nil, usagef("the policy %s allows no channel %q (it allows %s)", *f.policy, *f.channel, strings.Join(slices.Sorted(maps.Keys(trust.Channels)), ", "))
	}
	fetch, err := store.HTTPClient(*f.sf.caFile)
	if err != nil {
		return push.Options{}, nil, err
	}
	return push.Options{
		Name: name, Channel: *f.channel, Track: *f.track, AppID: *f.sf.appID,
		Client: client, Store: st, PublicURL: *f.publicURL, FloorReason: *f.floorReason, Fetch: fetch, DryRun: *f.dryRun, AllowOlder: *f.allowOlder,
		Log: logTo(e), KeyLabel: trust.Label,
	}, trust, nil
}

// verifyAndPush verifies the bundle exactly as augen verify does, with the
// channel the policy must allow, and pushes the verified value.
func (f *pushFlags) verifyAndPush(e *env, opts push.Options, trust *verify.Trust) (*push.Record, error) {
	bf, err := os.Open(opts.Name)
	if err != nil {
		return nil, err
	}
	defer bf.Close()
	info, err := bf.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, usagef("%s is not a regular file: push reads the bundle it verified again to upload it", opts.Name)
	}
	oldMap, doneOld, err := oldReleases(e, f.uf, f.olds)
	if err != nil {
		return nil, err
	}
	defer doneOld()
	progress, endProgress := showProgress(e, "")
	verified, rep, perr := verify.Bundle(e.ctx, bf, info.Size(), trust, verify.Options{Channel: opts.Channel, Old: oldMap, TempDir: os.TempDir(), AllowUnappliedDeltas: *f.allowUnapplied, Progress: progress})
	endProgress()
	if perr == nil {
		prog, endProgress := showProgress(e, "")
		opts.Bundle, opts.Progress = verified, prog
		rec, err := push.Push(e.ctx, opts)
		endProgress()
		return rec, asUsage(err)
	}
	rec := &push.Record{DryRun: opts.DryRun, Server: opts.Client.URL(), Store: opts.Store.String(), Files: []push.FileRecord{}, Floors: []push.FloorInfo{}, Changed: []string{}, Warnings: []string{}}
	if rep != nil {
		for _, fl := range rep.Failures {
			logTo(e)("verify: failed: " + fl.String())
		}
		if len(rep.Failures) > 0 {
			perr = fmt.Errorf("%w: %s (%d check(s) failed)", verify.ErrVerification, rep.Failures[0], len(rep.Failures))
		}
	}
	return rec, perr
}

// storeEnv is the environment the store's credentials come from, with
// AUGEN_STORE_PASSWORD_FILE read (as a secret file: no group or other
// permissions) into AUGEN_STORE_PASSWORD.
func storeEnv(k string) string {
	if k == "AUGEN_STORE_PASSWORD" {
		if f := os.Getenv("AUGEN_STORE_PASSWORD_FILE"); f != "" {
			b, err := signer.ReadSecretFile(f, "AUGEN_STORE_PASSWORD_FILE")
			if err != nil {
				storeEnvErr = err
				return ""
			}
			return string(b)
		}
	}
	return os.Getenv(k)
}

// storeEnvErr is the error of reading AUGEN_STORE_PASSWORD_FILE.
var storeEnvErr error

// asUsage turns push's usage mistakes into exit status 2.
func asUsage(err error) error {
	if err != nil && errors.Is(err, push.ErrUsage) {
		return usageError{strings.TrimPrefix(err.Error(), push.ErrUsage.Error()+": ")}
	}
	return err
}

func pushStatus(e *env, args []string) error {
	fs := newFlags(e, "push status", pushStatusUsage)
	sf := addServerFlags(fs)
	channel := fs.String("channel", "", "the `channel` to show")
	board := fs.String("board", "amd64-usr", "the `board` (amd64-usr or arm64-usr)")
	doVerify := fs.Bool("verify", false, "download what the channel serves and verify it (needs --policy)")
	policyPath := fs.String("policy", "", "the trust policy `file` whose payload keys --verify checks against")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return withHint(usagef("push status takes no arguments (the channel goes in --channel)"), `run "augen push status --help"`)
	}
	if *doVerify != (*policyPath != "") {
		return withHint(usagef("--verify and --policy go together"), `run "augen push status --help"`)
	}
	arch := nebraska.ArchForBoard(*board)
	if arch == 0 {
		return usagef("--board %q: want amd64-usr or arm64-usr", *board)
	}
	var trust *verify.Trust
	if *doVerify {
		var err error
		if trust, err = loadPolicy(*policyPath); err != nil {
			return err
		}
	}
	client, err := sf.client()
	if err != nil {
		return err
	}
	var ch *nebraska.Channel
	if *channel != "" {
		if ch, err = client.FindChannel(e.ctx, *sf.appID, *channel, arch); err != nil {
			return err
		}
	}
	if ch == nil {
		return listChannels(e, client, *sf.appID, *channel, *board, arch, *asJSON)
	}
	out, err := push.Status(e.ctx, client, *sf.appID, ch)
	if err != nil {
		return err
	}
	var verr error
	if *doVerify {
		if ch.Package == nil {
			return fmt.Errorf("channel %s serves nothing: nothing to verify", ch.Name)
		}
		fetch, err := store.HTTPClient(*sf.caFile)
		if err != nil {
			return err
		}
		out.Verified, verr = verifyServed(e, fetch, trust, ch.Package)
	}
	if *asJSON {
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
		return verr
	}
	printStatus(e, out)
	return verr
}

// listChannels is push status without a channel, or with one that does
// not exist: the channels there are.
func listChannels(e *env, client *nebraska.Client, app, channel, board string, arch int, asJSON bool) error {
	names, err := channelNames(e, client, app, arch)
	if err != nil {
		return err
	}
	if channel != "" {
		return withHint(usagef("channel %q (arch %d) does not exist on %s", channel, arch, client.URL()), "its "+board+" channels: "+orNone(strings.Join(names, ", ")))
	}
	if asJSON {
		return writeJSON(e.stdout, struct {
			Server   string   `json:"server"`
			Board    string   `json:"board"`
			Channels []string `json:"channels"`
		}{client.URL(), board, names})
	}
	fmt.Fprintf(e.stdout, "%s: %d %s channel(s): %s\n", client.URL(), len(names), board, orNone(strings.Join(names, ", ")))
	fmt.Fprintf(e.stderr, "%s: note: give --channel NAME to see what one serves\n", programName)
	return nil
}

// printStatus prints push status's human output.
func printStatus(e *env, out *push.ChannelStatus) {
	fmt.Fprintf(e.stdout, "channel %s (%s, arch %d)\n", out.Channel, out.ID, out.Arch)
	if p := out.Package; p == nil {
		fmt.Fprintln(e.stdout, "  serves nothing")
	} else {
		sha := "(none: update_engine will reject it)"
		if p.FlatcarAction != nil && p.FlatcarAction.SHA256 != "" {
			sha = p.FlatcarAction.SHA256 + " (base64, as Omaha sends it)"
			if b, err := base64.StdEncoding.DecodeString(p.FlatcarAction.SHA256); err == nil && len(b) == 32 {
				sha = hex.EncodeToString(b) + " (Omaha: " + p.FlatcarAction.SHA256 + ")"
			}
		}
		fmt.Fprintf(e.stdout, "  version  %s (package %s)\n  url      %s\n  size     %s\n  sha1     %s (base64)\n  sha256   %s\n", p.Version, p.ID, out.URL, p.Size, p.Hash, sha)
		for _, f := range p.ExtraFiles {
			fmt.Fprintf(e.stdout, "  extra    %s, %s bytes, sha256 %s\n", f.Name, f.Size, f.Hash256)
		}
	}
	switch {
	case !out.FloorsSupported:
		fmt.Fprintln(e.stdout, "  floors   (the server has no floors: multi-step updates)")
	case len(out.Floors) == 0:
		fmt.Fprintln(e.stdout, "  floors   none")
	}
	for _, f := range out.Floors {
		fmt.Fprintf(e.stdout, "  floor    %s (package %s): %s\n", f.Version, f.PackageID, orDash(f.Reason))
	}
	if len(out.Groups) == 0 {
		fmt.Fprintln(e.stdout, "  no group routes clients to it")
	}
	for _, g := range out.Groups {
		state := "updates enabled"
		if !g.UpdatesEnabled {
			state = "updates DISABLED"
		}
		fmt.Fprintf(e.stdout, "  group    %s, track %s, %s\n", g.Name, g.Track, state)
	}
	for _, v := range out.Verified {
		state := "OK: " + v.Detail
		if v.Error != "" {
			state = "FAILED: " + v.Error
		}
		fmt.Fprintf(e.stdout, "  verify   %s: %s\n", v.Name, state)
	}
}

func orDash(s string) string {
	if s == "" {
		return "(no reason given)"
	}
	return s
}

// verifyServed runs push.VerifyServed with a progress line per download.
func verifyServed(e *env, fetch *http.Client, trust *verify.Trust, p *nebraska.Package) ([]push.ServedCheck, error) {
	var pubs []crypto.PublicKey
	for _, k := range trust.PayloadKeys() {
		pubs = append(pubs, k)
	}
	progress, end := showProgress(e, "")
	defer end()
	return push.VerifyServed(e.ctx, fetch, pubs, p, os.TempDir(), progress)
}

// joinAnd joins names as "a", "a and b", "a, b and c".
func joinAnd(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// channelNames lists the server's channels of an architecture, sorted.
func channelNames(e *env, client *nebraska.Client, app string, arch int) ([]string, error) {
	all, err := client.Channels(e.ctx, app)
	if err != nil {
		return nil, err
	}
	names := []string{}
	for _, c := range all {
		if c.Arch == arch {
			names = append(names, c.Name)
		}
	}
	sort.Strings(names)
	return names, nil
}
