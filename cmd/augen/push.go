package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/augen-project/augen/nebraska"
	"github.com/augen-project/augen/push"
	"github.com/augen-project/augen/store"
	"github.com/augen-project/augen/verify"
)

const pushUsage = `Usage: augen push --policy policy.json --server URL --channel CHANNEL --store URL
                  [--public-url URL] [--dry-run] [--json] release.tar

Publishes a release bundle to a Nebraska update service, one step per line:
  1. verify the bundle exactly as "augen verify" does (always), and that the
     policy lets the keys that signed it publish to CHANNEL;
  2. upload every payload and extra file to the store under BOARD/VERSION/:
       file:///DIR          a directory (e.g. Nebraska's -host-flatcar-packages
                            folder; give --public-url, e.g. http://HOST/flatcar/)
       https://HOST/PATH    HTTP PUT, as nginx's dav module takes it
                            (AUGEN_STORE_USER / AUGEN_STORE_PASSWORD for basic auth)
       s3://BUCKET/PREFIX   any S3-compatible store; endpoint from
                            AWS_ENDPOINT_URL(_S3), credentials from the AWS
                            environment or shared credentials file
     and download each back from the client-facing URL, comparing size,
     SHA-1 and SHA-256 (a status code proves nothing);
  3. register the package (or reuse an identical one; a different package
     with the same version stops the push);
  4. point CHANNEL at it (GET, PUT with every field, GET again);
  5. send an update check as a client on the channel's track would, and
     check it is offered exactly the bundle's payload and extra files.
Nothing on the server changes before the files are proven served. Running
the same push again changes nothing; an interrupted push completes when
run again. The token (--token-file or AUGEN_TOKEN, sent as a bearer token)
never appears in output.

Example:
  augen push --policy policy.json --server https://nebraska.example.com \
      --channel dev-channel --store s3://flatcar-updates/ \
      --public-url https://update.example.com/ release.tar
`

const pushStatusUsage = `Usage: augen push status --server URL --channel CHANNEL [--board amd64-usr] [--json]

Shows what a channel serves now: version, URL, size and hashes of the payload
and its extra files, and which groups route clients to it.

Example:
  augen push status --server https://nebraska.example.com --channel stable --json
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
		b, err := os.ReadFile(*sf.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return nil, fmt.Errorf("token file %s is empty", *sf.tokenFile)
		}
	}
	return nebraska.New(*sf.server, nebraska.Options{Token: token, CAFile: *sf.caFile})
}

func pushCmd(e *env, args []string) error {
	fs := newFlags(e, "push", pushUsage)
	policyPath := fs.String("policy", "", "the trust policy `file`")
	sf := addServerFlags(fs)
	channel := fs.String("channel", "", "the `channel` to point at the release (e.g. dev-channel)")
	track := fs.String("track", "", "the `track` (GROUP= of update.conf) clients use (default: the channel's name)")
	storeURL := fs.String("store", "", "where to upload: file:///DIR, https://HOST/PATH or s3://BUCKET/PREFIX")
	publicURL := fs.String("public-url", "", "the base `URL` clients download from (default: the store's URL)")
	dryRun := fs.Bool("dry-run", false, "verify and print the plan; change nothing")
	allowUnapplied := fs.Bool("allow-unapplied-deltas", false, "publish deltas that were checked but not applied (push has no old images to apply them to)")
	asJSON := fs.Bool("json", false, "print a record of what was done as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() != 1:
		return withHint(usagef("expected one bundle"), `run "augen push --help"`)
	case *policyPath == "" || *channel == "" || *storeURL == "":
		return withHint(usagef("--policy, --server, --channel and --store are required"), `run "augen push --help"`)
	}
	if *publicURL != "" {
		if err := push.CheckPublicURL(*publicURL); err != nil {
			return usageError{err.Error()}
		}
	}
	client, err := sf.client()
	if err != nil {
		return err
	}
	st, err := store.Open(*storeURL, store.Options{CAFile: *sf.caFile})
	if err != nil {
		return err
	}
	trust, err := loadPolicy(*policyPath)
	if err != nil {
		return err
	}
	fetch, err := store.HTTPClient(*sf.caFile)
	if err != nil {
		return err
	}
	logf := func(step, msg string) { logTo(e)(step + ": " + msg) }
	// Verify exactly as augen verify does, with the channel the policy
	// must allow; push takes only the verified value.
	bf, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer bf.Close()
	info, err := bf.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return usagef("%s is not a regular file: push reads the bundle it verified again to upload it", fs.Arg(0))
	}
	progress, endProgress := showProgress(e, "")
	verified, rep, perr := verify.Bundle(e.ctx, bf, info.Size(), trust, verify.Options{Channel: *channel, TempDir: os.TempDir(), AllowUnappliedDeltas: *allowUnapplied, Progress: progress})
	endProgress()
	var rec *push.Record
	if perr == nil {
		prog, endProgress := showProgress(e, "")
		rec, perr = push.Push(e.ctx, push.Options{
			Bundle: verified, Name: fs.Arg(0), Channel: *channel, Track: *track, AppID: *sf.appID,
			Client: client, Store: st, PublicURL: *publicURL, Fetch: fetch, DryRun: *dryRun,
			Log:      logTo(e),
			Progress: prog,
		})
		endProgress()
	} else {
		rec = &push.Record{DryRun: *dryRun, Server: client.URL(), Store: st.String(), Files: []push.FileRecord{}, Warnings: []string{}}
		if rep != nil {
			for _, fl := range rep.Failures {
				logf("verify", "failed: "+fl.String())
			}
			if len(rep.Failures) > 0 {
				perr = fmt.Errorf("%w: %s (%d check(s) failed)", verify.ErrVerification, rep.Failures[0], len(rep.Failures))
			}
		}
	}
	if *asJSON {
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
	if perr != nil {
		return perr
	}
	if !*asJSON {
		what := "pushed"
		if *dryRun {
			what = "dry run, nothing changed:"
		}
		fmt.Fprintf(e.stdout, "%s %s %s to %s (%s): package %s, channel %s\n", what, rec.Board, rec.Version, *channel, client.URL(), rec.Package.Action, rec.Channel.Action)
	}
	return nil
}

func pushStatus(e *env, args []string) error {
	fs := newFlags(e, "push status", pushStatusUsage)
	sf := addServerFlags(fs)
	channel := fs.String("channel", "", "the `channel` to show")
	board := fs.String("board", "amd64-usr", "the `board` (amd64-usr or arm64-usr)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *channel == "" {
		return withHint(usagef("--server and --channel are required"), `run "augen push status --help"`)
	}
	arch := nebraska.ArchForBoard(*board)
	if arch == 0 {
		return usagef("--board %q: want amd64-usr or arm64-usr", *board)
	}
	client, err := sf.client()
	if err != nil {
		return err
	}
	ch, err := client.FindChannel(e.ctx, *sf.appID, *channel, arch)
	if err != nil {
		return err
	}
	if ch == nil {
		return fmt.Errorf("channel %q (arch %d) does not exist on %s", *channel, arch, client.URL())
	}
	app, err := client.App(e.ctx, *sf.appID)
	if err != nil {
		return err
	}
	type groupOut struct {
		Name           string `json:"name"`
		Track          string `json:"track"`
		UpdatesEnabled bool   `json:"updates_enabled"`
	}
	out := struct {
		Channel string            `json:"channel"`
		ID      string            `json:"id"`
		Arch    int               `json:"arch"`
		Package *nebraska.Package `json:"package"`
		URL     string            `json:"url,omitempty"`
		Groups  []groupOut        `json:"groups"`
	}{Channel: ch.Name, ID: ch.ID, Arch: ch.Arch, Package: ch.Package, Groups: []groupOut{}}
	for _, g := range app.Groups {
		if g.ChannelID != nil && *g.ChannelID == ch.ID {
			out.Groups = append(out.Groups, groupOut{g.Name, g.Track, g.PolicyUpdatesEnabled})
		}
	}
	if p := ch.Package; p != nil {
		out.URL = strings.TrimSuffix(p.URL, "/") + "/" + p.Filename
	}
	if *asJSON {
		return writeJSON(e.stdout, out)
	}
	fmt.Fprintf(e.stdout, "channel %s (%s, arch %d)\n", ch.Name, ch.ID, ch.Arch)
	if p := ch.Package; p == nil {
		fmt.Fprintln(e.stdout, "  serves nothing")
	} else {
		sha := "(none: update_engine will reject it)"
		if p.FlatcarAction != nil && p.FlatcarAction.SHA256 != "" {
			sha = p.FlatcarAction.SHA256
		}
		fmt.Fprintf(e.stdout, "  version  %s (package %s)\n  url      %s\n  size     %s\n  sha1     %s\n  sha256   %s\n", p.Version, p.ID, out.URL, p.Size, p.Hash, sha)
		for _, f := range p.ExtraFiles {
			fmt.Fprintf(e.stdout, "  extra    %s, %s bytes, sha256 %s\n", f.Name, f.Size, f.Hash256)
		}
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
	return nil
}
